"""Telegram: a bot's private chats, through the Telegram Bot API."""

from channels.telegram.adapter import TelegramChannel

__all__ = ["TelegramChannel"]
