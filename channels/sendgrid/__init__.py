"""SendGrid: mail in through the Inbound Parse webhook, replies out through the v3 Mail Send API,
delivery events from the signed Event Webhook; parsing, sanitising and threading are email's."""

from channels.sendgrid.adapter import SendGridChannel

__all__ = ["SendGridChannel"]
