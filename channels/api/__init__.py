"""API channel: a customer's own system posts inbound messages (and delivery reports) over signed
HTTP, and receives the agents' replies at its ``outbound_url`` the same way."""

from channels.api.inbound import ApiChannel

__all__ = ["ApiChannel"]
