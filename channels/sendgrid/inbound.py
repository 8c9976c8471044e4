"""SendGrid's Inbound Parse post (``multipart/form-data``) as one RFC 5322 mail for email's
parser, so SendGrid mail is parsed, sanitised and threaded exactly like IMAP mail.

With "POST the raw, full MIME message" on, the ``email`` field is the mail itself. Otherwise the
mail is put back together from ``headers`` (the original header block), ``text``, ``html`` and
the files ``attachment1..N`` described by ``attachment-info``; form fields are decoded with the
charsets SendGrid names in ``charsets``. Anything SendGrid itself would never send (a broken
form, a name or subject with line breaks, an attachment that was announced but is missing) is a
:class:`Refused` with a 4xx status: SendGrid retries failures for three days, and retrying bad
input helps nobody.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Mapping
from email.message import EmailMessage, Message
from typing import Any

MAX_FIELDS = 300
MAX_ATTACHMENTS = 100
#: header fields of the original kept when the mail is put back together (its MIME structure is
#: rebuilt from the posted parts, so Content-* and MIME-Version are not)
DROPPED_HEADERS = ("content-", "mime-version")
#: SendGrid's form fields that name or describe; a control character in one is not SendGrid
_CONTROL = {chr(c) for c in range(32) if c != 9} | {"\x7f"}


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _form(body: bytes, content_type: str) -> Message:
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in (
        content_type.lower()
    ):
        raise Refused(415, "unsupported_media_type", "Inbound Parse posts multipart/form-data")
    if any(c in content_type for c in "\r\n\x00"):
        raise Refused(400, "invalid_form", "a broken Content-Type")
    try:
        form = email.message_from_bytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
            policy=email.policy.HTTP,
        )
    except Exception as exc:  # the parser is lenient; whatever it still throws is bad input
        raise Refused(
            400, "invalid_form", f"the form cannot be read: {type(exc).__name__}"
        ) from exc
    parts = form.get_payload()
    if not form.is_multipart() or not isinstance(parts, list) or not parts or form.defects:
        raise Refused(400, "invalid_form", "a malformed multipart/form-data body")
    if len(parts) > MAX_FIELDS:
        raise Refused(413, "too_many_fields", f"more than {MAX_FIELDS} form fields")
    return form


def fields(body: bytes, content_type: str) -> dict[str, tuple[bytes, Message]]:
    """The form's fields by name: the value's bytes and its part (for a file's own headers)."""
    out: dict[str, tuple[bytes, Message]] = {}
    payload = _form(body, content_type).get_payload()
    assert isinstance(payload, list)
    for part in payload:
        if not isinstance(part, Message) or part.get_content_disposition() != "form-data":
            raise Refused(400, "invalid_form", "a form part without Content-Disposition form-data")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name or name in out:
            raise Refused(400, "invalid_form", "a form part without a name, or a name twice")
        value = part.get_payload(decode=True)
        out[name] = (value if isinstance(value, bytes) else b"", part)
    return out


def _json(value: bytes, name: str) -> Any:
    try:
        return json.loads(value.decode("utf-8")) if value.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Refused(400, "invalid_form", f"{name} is not JSON") from exc


def _one_line(value: str, what: str) -> str:
    if any(c in _CONTROL for c in value):
        raise Refused(422, "invalid_value", f"{what} holds line breaks or control characters")
    return value


def _text(value: bytes, charset: object) -> str:
    try:
        return value.decode(charset if isinstance(charset, str) and charset else "utf-8")
    except (LookupError, UnicodeDecodeError):
        return value.decode("utf-8", errors="replace")


def assemble(form: Mapping[str, tuple[bytes, Message]]) -> bytes:
    """The mail SendGrid received, as bytes for :func:`channels.email.mime.parse`."""
    if "email" in form:  # "send raw": the full MIME message
        raw = form["email"][0]
        if not raw.strip():
            raise Refused(400, "invalid_mail", "the email field is empty")
        return raw
    if "headers" not in form:
        raise Refused(400, "invalid_form", "neither headers nor email is in the post")
    charsets = _json(form["charsets"][0], "charsets") if "charsets" in form else {}
    if not isinstance(charsets, dict):
        raise Refused(400, "invalid_form", "charsets is not an object")
    for name in ("from", "to", "subject"):
        if name in form:
            _one_line(_text(form[name][0], charsets.get(name)).strip(), name)
    kept = _kept_headers(form["headers"][0])
    names = {line.split(b":", 1)[0].strip().lower() for line in kept}
    policy = email.policy.default
    for name in ("subject", "from"):
        if name in form and name.encode() not in names:
            value = _text(form[name][0], charsets.get(name)).strip()
            kept.append(policy.fold(name.capitalize(), value).encode("utf-8").rstrip(b"\n"))
    body = EmailMessage()
    text = _text(form["text"][0], charsets.get("text")) if "text" in form else None
    html = _text(form["html"][0], charsets.get("html")) if "html" in form else None
    body.set_content(text if text is not None else "")
    if html is not None:
        body.add_alternative(html, subtype="html")
    for filename, content_type, content_id, data in _attachments(form):
        maintype, _, subtype = content_type.partition("/")
        body.add_attachment(
            data, maintype=maintype or "application", subtype=subtype or "octet-stream",
            filename=filename, cid=f"<{content_id}>" if content_id else None,
        )  # fmt: skip
    return b"\n".join(kept) + b"\n" + body.as_bytes()


def _kept_headers(block: bytes) -> list[bytes]:
    """The original header fields, each with its folded lines, less the MIME ones."""
    fields: list[list[bytes]] = []
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1].append(line)
        elif b":" in line:
            fields.append([line])
    return [
        b"\n".join(f)
        for f in fields
        if not f[0].split(b":", 1)[0].strip().lower().decode("latin-1").startswith(DROPPED_HEADERS)
    ]


def _attachments(
    form: Mapping[str, tuple[bytes, Message]],
) -> list[tuple[str, str, str | None, bytes]]:
    info = _json(form["attachment-info"][0], "attachment-info") if "attachment-info" in form else {}
    if not isinstance(info, dict) or len(info) > MAX_ATTACHMENTS:
        raise Refused(400, "invalid_form", "attachment-info is not an object of attachments")
    count = form.get("attachments", (b"0", None))[0].strip() or b"0"
    if not count.isdigit() or int(count) != len(info):
        raise Refused(400, "invalid_form", "attachments does not count attachment-info")
    out: list[tuple[str, str, str | None, bytes]] = []
    for field, about in info.items():
        if not isinstance(field, str) or not isinstance(about, dict) or field not in form:
            raise Refused(400, "invalid_form", "an attachment in attachment-info is missing")
        data, part = form[field]
        filename = about.get("filename") or about.get("name") or part.get_filename() or field
        kind = about.get("type") or part.get_content_type()
        content_id = about.get("content-id")
        if not isinstance(filename, str) or not isinstance(kind, str):
            raise Refused(400, "invalid_form", "an attachment's name or type is not text")
        if content_id is not None and not isinstance(content_id, str):
            raise Refused(400, "invalid_form", "an attachment's content-id is not text")
        _one_line(filename, "an attachment's name")
        _one_line(kind, "an attachment's type")
        if "/" not in kind:
            kind = "application/octet-stream"
        out.append(
            (filename[:255], kind, _one_line(content_id, "a content-id") if content_id else None,
             data)
        )  # fmt: skip
    return out
