"""Web chat widget channel: the inbox kind and its settings (docs/channels/webchat.md). The
visitor side (the ``/widget`` socket namespace) is realtime's ``realtime.widget``; the widget's
JavaScript is the ``widget/`` folder, served by the gateway."""

from channels.webchat.adapter import WebchatChannel
from channels.webchat.settings import WebchatPolicy, policy_of

__all__ = ["WebchatChannel", "WebchatPolicy", "policy_of"]
