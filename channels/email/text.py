"""What an agent reads of an email: HTML sanitised with nh3 before anyone sees it, a plain-text
version made from it when the sender sent none, and the reply's own words without the quoted
thread and the signature beneath it (the full original is kept as a file on the message)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

#: reply and forward prefixes, as mail clients in many languages write them: Re, Fwd, AW
#: (German), SV (Nordic), VS (Finnish), RIF (Italian), TR (French), Ynt (Turkish), ...
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|vb|antw|rif|tr|ynt|odp|enc|rv|res|ref)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a])\s*",
    re.IGNORECASE,
)
_BRACKET_TAG = re.compile(r"^\s*\[(?:fwd?|re)\]\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def thread_subject(subject: str | None) -> str | None:
    """The subject without Re:/Fwd: and localised prefixes (repeated ones too), whitespace
    collapsed: the thread key of the subject rule. ``None`` when nothing is left."""
    if not subject:
        return None
    text = _SPACE.sub(" ", subject).strip()
    while True:
        stripped = _BRACKET_TAG.sub("", _PREFIX.sub("", text, count=1), count=1)
        if stripped == text:
            break
        text = stripped
    return text[:512] or None


#: tags and attributes an agent's console may show; no scripts, styles, forms or frames, and no
#: remote images (trackers): only inline ``cid:`` and ``data:`` images survive
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "font", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if value.lower().startswith(("cid:", "data:image/")) else None
    return value


def sanitise_html(raw: str) -> str:
    """HTML safe to show: nh3 (ammonia) with an allow-list; remote images dropped."""
    return nh3.clean(
        raw,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


class _Text(HTMLParser):
    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping = 0
        self._quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag == "blockquote":
            self._quote += 1
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._quote:
            data = "\n".join("> " + line for line in data.split("\n"))
        self.out.append(data)


def html_to_text(raw: str) -> str:
    """A plain-text version of an HTML body (blockquotes become ``>`` lines)."""
    parser = _Text()
    parser.feed(raw)
    parser.close()
    text = html.unescape("".join(parser.out))
    lines = [_SPACE.sub(" ", line).strip() if not line.startswith(">") else line.rstrip()
             for line in text.split("\n")]  # fmt: skip
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


#: where a quoted earlier message begins: "On <date>, <someone> wrote:" in several languages,
#: Outlook's header block, and forwarded-message markers
_QUOTE_HEADER = re.compile(
    r"^(?:On\s.{1,200}\swrote:?|Am\s.{1,200}\sschrieb.{0,80}:|Le\s.{1,200}\sa\sécrit\s?:"
    r"|El\s.{1,200}\sescribió:|Il\s.{1,200}\sha\sscritto:|Op\s.{1,200}\sschreef.{0,80}:"
    r"|-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Ursprüngliche Nachricht\s*-{2,}"
    r"|_{10,}|From:\s.+|Von:\s.+|De\s?:\s.+)\s*$",
    re.IGNORECASE,
)
#: the usual signature separator ("-- "), and phone clients' sign-offs
_SIGNATURE = re.compile(
    r"^(?:--\s?|Sent from my .{1,40}|Get Outlook for .{1,40}|Envoyé de mon .{1,40})$"
)


def main_text(text: str) -> str:
    """The reply's own words: cut at the first quoted-thread header or ``>`` block that runs to
    the end, and at the signature separator. If that leaves nothing, the whole text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for n, line in enumerate(lines):
        stripped = line.strip()
        if _QUOTE_HEADER.match(stripped) or _SIGNATURE.match(line.rstrip("\n")):
            cut = n
            break
        if stripped.startswith(">") and all(
            not rest.strip() or rest.lstrip().startswith(">") for rest in lines[n:]
        ):
            cut = n
            break
    kept = "\n".join(lines[:cut]).strip()
    return kept or text.strip()
