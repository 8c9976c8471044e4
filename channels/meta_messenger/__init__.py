"""Facebook Messenger: a Facebook Page's conversations, through the Messenger Platform."""

from channels.meta_messenger.adapter import MessengerChannel

__all__ = ["MessengerChannel"]
