"""Facebook Messenger's adapter: the shared Meta adapter for a Page.

Settings: ``page_id`` (required); optional ``app_id`` (echoes sent by this app are the hub's),
``human_agent`` (reply up to 7 days with the HUMAN_AGENT tag), ``rate_per_second``,
``api_base_url`` (default ``https://graph.facebook.com``) and ``api_version``.
Secrets: ``page_access_token``, ``app_secret`` (webhooks are signed with it) and
``verify_token`` (made by the hub if not given; entered in the app's webhook settings).
"""

from __future__ import annotations

from channels._meta.adapter import MetaAdapter
from channels._meta.flavour import Flavour, manifest
from hub.identities import MESSENGER

MANIFEST = manifest(
    id="meta_messenger",
    name="Facebook Messenger",
    identity=MESSENGER,
    account_setting="page_id",
    token_secret="page_access_token",
)
FLAVOUR = Flavour(
    manifest=MANIFEST,
    object="page",
    account_setting="page_id",
    token_secret="page_access_token",
    media_hosts=("fbcdn.net", "fbsbx.com", "facebook.com"),
    profile_fields=("first_name", "last_name", "profile_pic"),
    label="Messenger",
)


class MessengerChannel(MetaAdapter):
    manifest = MANIFEST
    flavour = FLAVOUR
