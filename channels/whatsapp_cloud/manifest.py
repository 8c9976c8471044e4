"""The WhatsApp Cloud API channel's manifest: settings, secrets, and Meta's statuses mapped to ours.

Inbox settings: ``phone_number_id`` (the business number's Graph id; required); optional
``business_account_id`` (the WABA id: the breaker's key, so numbers of one account fail
together), ``rate_per_second`` (default 80, Cloud API's default throughput per number),
``api_base_url`` (default ``https://graph.facebook.com``; tests point it at a local mock) and
``api_version`` (default :data:`API_VERSION`).
Secrets: ``access_token`` (a system user's token with ``whatsapp_business_messaging``),
``app_secret`` (the Meta app's secret: webhooks are signed with it) and ``verify_token`` (any
string, entered again in the app's webhook settings for the GET handshake).
"""

from datetime import timedelta

from channels._base import Capability, Manifest
from hub.events import MessageStatus
from hub.phone import PHONE

API_BASE_URL = "https://graph.facebook.com"
API_VERSION = "v23.0"
DEFAULT_RATE = 80.0
#: WhatsApp's customer-service window: free-form replies only this long after the customer wrote
SERVICE_WINDOW = timedelta(hours=24)

MANIFEST = Manifest(
    id="whatsapp_cloud",
    name="WhatsApp (Cloud API)",
    capabilities=frozenset(
        {
            Capability.TEXT,
            Capability.MEDIA,
            Capability.TEMPLATES,
            Capability.READ_RECEIPTS,
            Capability.LOCATION,
        }
    ),
    required_secrets=("access_token", "app_secret", "verify_token"),
    required_settings=("phone_number_id",),
    optional_settings=("business_account_id",),
    generated_secrets=("verify_token",),
    identity=PHONE,
    # the ``status`` values of the Cloud API's ``statuses`` webhook objects
    statuses={
        "sent": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "read": MessageStatus.READ,
        "failed": MessageStatus.FAILED,
    },
    reply_window=SERVICE_WINDOW,
    get_handshake=True,
)

#: Graph error codes worth another attempt: throughput and rate limits, and Meta's own outages
RETRYABLE_CODES = frozenset(
    {
        "1",  # API unknown (possibly a server error)
        "2",  # API service: temporary downtime or overload
        "4",  # the app's API call rate limit
        "80007",  # the WhatsApp Business Account's rate limit
        "130429",  # the number's throughput (messages per second)
        "131000",  # something went wrong
        "131016",  # service unavailable
        "131056",  # too many messages to one recipient (pair rate limit)
        "131057",  # the business account is in maintenance mode
        "133004",  # server temporarily unavailable
    }
)
#: the number's throughput was reached: every send from the number backs off
THROUGHPUT_CODE = "130429"
#: the pair rate limit: one recipient gets about one message every six seconds, after a burst
PAIR_RATE_CODE = "131056"
PAIR_RATE_WAIT = 6.0
WINDOW_CLOSED = "window_closed"
