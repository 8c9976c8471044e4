"""The Telegram channel's manifest.

Settings (all optional): ``api_base_url`` (default ``https://api.telegram.org``; tests point it at
a local mock), ``quote_replies`` (an agent's reply quotes the customer's latest message),
``rate_per_second`` (default 25 for the bot as a whole: Telegram takes about 30).
Secrets: ``bot_token`` (from @BotFather) and ``webhook_secret`` (made by the hub; Telegram sends
it back in ``X-Telegram-Bot-Api-Secret-Token`` on every update).
"""

from channels._base import Capability, Manifest
from hub.identities import TELEGRAM

API_BASE_URL = "https://api.telegram.org"
#: the Bot API takes about 30 messages a second from one bot (and one a second per chat)
DEFAULT_RATE = 25.0
#: the Bot API downloads files up to this size; larger ones cannot be had
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
MAX_TEXT = 4096
MAX_CAPTION = 1024

MANIFEST = Manifest(
    id="telegram",
    name="Telegram",
    capabilities=frozenset(
        {
            Capability.TEXT,
            Capability.MEDIA,
            Capability.LOCATION,
            Capability.QUICK_REPLIES,
            Capability.TYPING,
        }
    ),
    required_secrets=("bot_token", "webhook_secret"),
    optional_settings=("quote_replies",),
    generated_secrets=("webhook_secret",),
    identity=TELEGRAM,
    # bots get no delivery or read reports
    statuses={},
)
