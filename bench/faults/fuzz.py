"""The long, coverage-guided fuzzing campaign (atheris / libFuzzer) of every channel's webhook
parser and signature check — the same target as the hypothesis tests
(``bench/faults/webhook_targets.py``).

    .venv/bin/uv pip install --python .venv/bin/python -e '.[fuzz]'    # atheris: a binary wheel
    .venv/bin/python -m bench.faults.fuzz --channel api -- -runs=100000
    .venv/bin/python -m bench.faults.fuzz --channel twilio -- -runs=100000 -max_len=4096
    .venv/bin/python -m bench.faults.fuzz --channel whatsapp_cloud -- -runs=100000 CORPUS_DIR

Each input is a body (and, by its first byte, a content type and whether the signature header
is the provider's or made of the input itself). The body is correctly signed in the first case,
so the parser is reached. Anything other than a parse result or a 4xx ``WebhookRejected`` is a
crash that libFuzzer reports with the input that caused it. The providers' real fixtures
(``tests/fixtures``) seed the corpus. Arguments after ``--`` go to libFuzzer (``-runs``,
``-max_total_time``, ``-jobs``, a corpus directory, ...).

``--known`` lets the campaign go on past the one bug already recorded by an ``xfail`` test
(``verify_hmac_sha256`` raising ``TypeError`` on a non-ASCII signature header): those inputs are
counted and reported at the end instead of stopping the run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

CHANNELS = ("api", "twilio", "whatsapp_cloud")

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
OTHER_TYPES = ("", "text/plain", "application/json", "application/x-www-form-urlencoded")
KNOWN = "comparing strings with non-ASCII characters is not supported"

counts = {"inputs": 0, "parsed": 0, "refused": 0, "known_bug": 0}


def one_input(channel: str, data: bytes, known: bool) -> None:
    from bench.faults.webhook_targets import CONTENT_TYPES, outcome, request

    counts["inputs"] += 1
    if counts["inputs"] % 10_000 == 0:
        print(f"{channel}: {counts}", file=sys.stderr, flush=True)
    mode = data[0] if data else 0
    body = data[1:]
    content_type = CONTENT_TYPES[channel] if mode % 4 != 3 else OTHER_TYPES[(mode >> 2) % 4]
    headers = None
    if mode & 0x80:  # the signature header is fuzzed too: up to 100 bytes of the input
        raw, body = body[:100], body[100:]
        name = "X-Twilio-Signature" if channel == "twilio" else "X-Hub-Signature-256"
        headers = {name: raw.decode("utf-8", "replace")}
    try:
        result = outcome(request(channel, body, content_type, headers), channel)
    except TypeError as exc:
        if known and KNOWN in str(exc):
            counts["known_bug"] += 1
            return
        raise
    counts["parsed" if hasattr(result, "messages") else "refused"] += 1


def seeds(channel: str, into: Path) -> None:
    """The provider's fixtures as seed inputs: signed (mode byte 0), and with a wrong signature
    header for the fuzzer to mutate (mode byte 0x80)."""
    folder = {"api": None, "twilio": "twilio", "whatsapp_cloud": "whatsapp_cloud"}[channel]
    bodies = [b'{"message_id":"m-1","contact":{"identifier":"c-1"},"text":"hello"}']
    if folder:
        bodies = [
            p.read_bytes().strip() for p in sorted((FIXTURES / folder).iterdir())
            if p.suffix in (".json", ".txt")
        ]  # fmt: skip
    header = (b"sha256=" + b"0" * 64 if channel != "twilio" else b"A" * 27 + b"=").ljust(100)
    for i, body in enumerate(bodies):
        (into / f"seed-{i}").write_bytes(b"\x00" + body)
        (into / f"seed-{i}-header").write_bytes(b"\x80" + header + body)  # a fuzzed signature


def main() -> None:
    parser = argparse.ArgumentParser(description="atheris campaign of the webhook parsers")
    parser.add_argument("--channel", choices=CHANNELS, required=True)
    parser.add_argument("--known", action="store_true", help="count the known bug, go on")
    args, libfuzzer = parser.parse_known_args()
    libfuzzer = [a for a in libfuzzer if a != "--"]
    atheris: Any = importlib.import_module("atheris")  # the optional extra `fuzz`
    corpus = [a for a in libfuzzer if not a.startswith("-")]
    if not corpus:  # a fresh corpus seeded from the fixtures
        seeded = Path(tempfile.mkdtemp(prefix=f"fuzz-{args.channel}-"))
        seeds(args.channel, seeded)
        libfuzzer.append(str(seeded))

    with atheris.instrument_imports():  # coverage of the channels, the signature checks
        import bench.faults.webhook_targets  # noqa: F401
    channel, known = args.channel, args.known
    atheris.Setup([sys.argv[0], *libfuzzer], lambda data: one_input(channel, data, known))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
