"""msgspec (0.19 to at least 0.22) corrupts memory when a type has a union of a
pattern-constrained ``str`` and a list of such strings: building its decoder or JSON schema
crashes the process later, at garbage collection. The gateway builds every route's decoders and
the OpenAPI document at start-up, so such a type would crash gateways at random. This runs every
msgspec type of the hub under ``PYTHONMALLOC=debug``, which makes the corruption crash at once."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import gc, importlib, pkgutil
import msgspec
import channels, gateway, hub, realtime
from gateway.openapi import build_document
from gateway.routes import ALL_ROUTES

for package in (channels, gateway, hub, realtime):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)

def structs(base):
    for sub in base.__subclasses__():
        yield sub
        yield from structs(sub)

found = [s for s in structs(msgspec.Struct) if s.__module__.split(".")[0] in
         ("channels", "gateway", "hub", "realtime")]
for _ in range(3):
    build_document(ALL_ROUTES, "test")
    for kind in found:
        msgspec.json.Decoder(kind)
        msgspec.json.schema(kind)
    gc.collect()
print(len(found))
"""


def test_every_hub_type_builds_without_corrupting_memory() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "PYTHONMALLOC": "debug"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert int(done.stdout.strip()) > 100, "the hub's types were not all found"
