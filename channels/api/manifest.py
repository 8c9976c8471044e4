"""The API channel's manifest."""

from channels._base import Manifest

MANIFEST = Manifest(
    id="api",
    name="API",
    capabilities=frozenset({"text", "media"}),
    required_secrets=("signing_secret",),
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
