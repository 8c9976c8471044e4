"""Twilio: SMS, MMS and WhatsApp through Twilio's Messaging API (one channel; the inbox's ``kind``
setting says which)."""

from channels.twilio.adapter import TwilioChannel

__all__ = ["TwilioChannel"]
