"""The channels this hub has, with what an inbox of each needs: the console's set-up wizard
builds its form from this list (no channel is hard-coded in the console)."""

from __future__ import annotations

import msgspec

from gateway.route import Call, route
from hub.authz import Permission
from hub.contracts.registry import channel_registry


class ChannelInfo(msgspec.Struct):
    id: str
    name: str
    capabilities: list[str]
    required_settings: list[str]
    optional_settings: list[str]
    required_secrets: list[str]
    optional_secrets: list[str]
    #: secrets the hub makes when none is given (shown once in the reply to the create)
    generated_secrets: list[str]
    #: inboxes of the channel receive webhooks at ``webhook_url`` (a voice inbox does not)
    webhooks: bool
    #: the provider verifies the webhook URL with a GET carrying the inbox's ``verify_token``
    get_handshake: bool


class ChannelList(msgspec.Struct):
    data: list[ChannelInfo]


@route(
    "GET",
    "/api/v1/channels",
    permission=Permission.INBOXES_MANAGE,
    summary="The channels inboxes can be made for, with their settings and secrets",
    tag="inboxes",
    reply=ChannelList,
)
async def list_channels_route(call: Call) -> ChannelList:
    registry = channel_registry()
    found = []
    for channel_id in registry.ids():
        adapter = registry.get(channel_id)
        if adapter is None:
            continue
        m = adapter.manifest
        found.append(
            ChannelInfo(
                id=m.id,
                name=m.name,
                capabilities=sorted(m.capabilities),
                required_settings=list(m.required_settings),
                optional_settings=list(m.optional_settings),
                required_secrets=list(m.required_secrets),
                optional_secrets=list(m.optional_secrets),
                generated_secrets=list(m.generated_secrets),
                webhooks=m.webhooks and "voice" not in m.capabilities,
                get_handshake=m.get_handshake,
            )
        )
    return ChannelList(found)


ROUTES = [list_channels_route]
