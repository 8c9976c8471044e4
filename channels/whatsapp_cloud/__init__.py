"""WhatsApp Cloud API: Meta's hosted WhatsApp Business Platform, through the Graph API."""

from channels.whatsapp_cloud.adapter import WhatsAppCloudChannel

__all__ = ["WhatsAppCloudChannel"]
