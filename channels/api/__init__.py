"""API channel: a customer's own system posts inbound messages over signed HTTP."""

from channels.api.inbound import ApiChannel

__all__ = ["ApiChannel"]
