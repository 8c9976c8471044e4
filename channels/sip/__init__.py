"""Voice over SIP: a pjsua2 user agent in the hub's ``voice`` process role (3CX, Asterisk)."""

from channels.sip.adapter import SipChannel

__all__ = ["SipChannel"]
