"""The SIP voice channel's manifest."""

from channels._base import Capability, Manifest

MANIFEST = Manifest(
    id="sip",
    name="Voice (SIP)",
    capabilities=frozenset({Capability.VOICE}),
    required_secrets=(),
    optional_settings=("mode", "bind", "port", "registrar", "accounts", "pbx", "default_region"),
    optional_secrets=("password",),
    # callers are phone numbers: a caller who also writes on WhatsApp or SMS is one contact
    identity="phone",
)
