"""The Twilio channel's manifest: settings, secrets, and Twilio's message statuses mapped to ours.

Inbox settings: ``kind`` (``sms`` or ``whatsapp``); ``from_number`` (E.164) or
``messaging_service_sid`` (``MG...``); optional ``default_region`` (ISO country code used to read
numbers written without ``+``), ``rate_per_second`` (default 1: one message a second per long
code), ``api_base_url`` (default ``https://api.twilio.com``; tests point it at a local mock).
Secrets: ``account_sid`` and ``auth_token`` (optional ``webhook_signing_secret`` for webhooks
signed with a Twilio SharedKey, announced by ``X-Twilio-Webhooks-Signature-Settings``).
"""

from channels._base import Capability, Manifest
from hub.events import MessageStatus
from hub.phone import PHONE

API_BASE_URL = "https://api.twilio.com"
KINDS = ("sms", "whatsapp")
DEFAULT_RATE = 1.0

MANIFEST = Manifest(
    id="twilio",
    name="Twilio SMS / WhatsApp",
    capabilities=frozenset(
        {Capability.TEXT, Capability.MEDIA, Capability.READ_RECEIPTS, Capability.LOCATION}
    ),
    required_secrets=("account_sid", "auth_token"),
    required_settings=("kind",),
    optional_settings=("from_number", "messaging_service_sid", "default_region"),
    optional_secrets=("webhook_signing_secret",),
    identity=PHONE,
    # every value of Twilio's Message ``status``; "sent" for us means "the provider has it"
    statuses={
        "accepted": MessageStatus.SENT,
        "scheduled": MessageStatus.SENT,
        "queued": MessageStatus.SENT,
        "sending": MessageStatus.SENT,
        "sent": MessageStatus.SENT,
        "partially_delivered": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "read": MessageStatus.READ,
        "failed": MessageStatus.FAILED,
        "undelivered": MessageStatus.FAILED,
        "canceled": MessageStatus.FAILED,
        "receiving": MessageStatus.RECEIVED,
        "received": MessageStatus.RECEIVED,
    },
)

#: what agents are shown for the error codes status callbacks most often carry
ERROR_MESSAGES = {
    "21211": "Invalid 'To' phone number",
    "21408": "Sending to this region is not enabled",
    "21610": "The recipient has unsubscribed (replied STOP)",
    "21614": "The 'To' number is not a mobile number",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "30008": "Unknown error",
    "30032": "Toll-free number has not been verified",
    "63016": "Outside the WhatsApp 24-hour window: only templates may be sent",
}
