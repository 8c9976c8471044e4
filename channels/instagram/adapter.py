"""Instagram Direct's adapter: the shared Meta adapter for an Instagram professional account.

Settings: ``instagram_account_id`` (the account's id, which Meta puts in each webhook entry and
sends from; required); optional ``app_id``, ``human_agent``, ``rate_per_second``,
``api_base_url`` (default ``https://graph.facebook.com``) and ``api_version``.
Secrets: ``access_token`` (a token with ``instagram_manage_messages``), ``app_secret`` and
``verify_token``.
"""

from __future__ import annotations

from channels._meta.adapter import MetaAdapter
from channels._meta.flavour import Flavour, manifest
from hub.identities import INSTAGRAM

MANIFEST = manifest(
    id="instagram",
    name="Instagram Direct",
    identity=INSTAGRAM,
    account_setting="instagram_account_id",
    token_secret="access_token",
)
FLAVOUR = Flavour(
    manifest=MANIFEST,
    object="instagram",
    account_setting="instagram_account_id",
    token_secret="access_token",
    media_hosts=("cdninstagram.com", "instagram.com", "fbcdn.net", "fbsbx.com", "facebook.com"),
    profile_fields=("name", "username", "profile_pic"),
    label="Instagram",
    echo_metadata=False,
)


class InstagramChannel(MetaAdapter):
    manifest = MANIFEST
    flavour = FLAVOUR
