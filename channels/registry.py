"""Every channel the hub knows. Adding a channel is its folder plus one line in ``ADAPTERS``; the
composition root hands :data:`REGISTRY` to the core."""

from __future__ import annotations

from channels._base import ChannelAdapter
from channels.api import ApiChannel
from channels.email import EmailChannel
from channels.instagram import InstagramChannel
from channels.meta_messenger import MessengerChannel
from channels.sendgrid import SendGridChannel
from channels.sip import SipChannel
from channels.telegram import TelegramChannel
from channels.twilio import TwilioChannel
from channels.webchat import WebchatChannel
from channels.whatsapp_cloud import WhatsAppCloudChannel
from hub.contracts.registry import ChannelRegistry

ADAPTERS: tuple[type[ChannelAdapter], ...] = (
    ApiChannel,
    TwilioChannel,
    WhatsAppCloudChannel,
    SipChannel,
    EmailChannel,
    SendGridChannel,
    MessengerChannel,
    InstagramChannel,
    TelegramChannel,
    WebchatChannel,
)

REGISTRY = ChannelRegistry(ADAPTERS)
