"""Instagram Direct: a professional Instagram account's messages, through the Messenger
Platform's Instagram messaging."""

from channels.instagram.adapter import InstagramChannel

__all__ = ["InstagramChannel"]
