"""Agent bots: administrators attach a bot (an outgoing webhook and a token of its own) to an
inbox; the bot, or an agent, hands a conversation to people (see docs/automation.md)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from automation.bots import InboxBot, get_bot, handoff, remove_bot, set_bot
from gateway.route import Call, Reply, route
from gateway.routes._common import Name, path_id, record_id, run
from hub.authz import Permission
from hub.fields import RecordId


class BotIn(msgspec.Struct, forbid_unknown_fields=True):
    """``webhook_id``: the outgoing webhook subscription the bot's events are delivered to."""

    name: Name
    webhook_id: RecordId


class BotOut(msgspec.Struct):
    inbox_id: str
    name: str
    webhook_id: str
    token_id: str
    created_at: datetime
    #: the bot's API token (conversations:read and conversations:write): only when just made
    token: str | None = None


class HandoffOut(msgspec.Struct):
    conversation_id: str
    handed_off_at: datetime
    #: the agent assignment gave it to (``null``: it waits in the queue, or the inbox has no
    #: assignment policy)
    assignee_id: str | None


def _out(bot: InboxBot) -> BotOut:
    return BotOut(bot.inbox_id, bot.name, bot.webhook_id, bot.token_id, bot.created_at, bot.token)


@route(
    "GET",
    "/api/v1/inboxes/{inbox_id}/bot",
    permission=Permission.ACCOUNT_MANAGE,
    summary="The inbox's agent bot (404 when it has none)",
    tag="automation",
    reply=BotOut,
)
async def get_bot_route(call: Call) -> BotOut:
    inbox_id = path_id(call, "inbox_id", "inbox")
    return _out(await run(call, get_bot, call.principal.account_id, inbox_id))


@route(
    "PUT",
    "/api/v1/inboxes/{inbox_id}/bot",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Hand the inbox's new conversations to a bot over an outgoing webhook (the reply "
    "shows the bot's API token once, when it is made)",
    tag="automation",
    body=BotIn,
    reply=BotOut,
)
async def put_bot_route(call: Call) -> BotOut:
    body: BotIn = call.body
    who = call.principal
    made = await run(
        call, set_bot, account_id=who.account_id, inbox_id=path_id(call, "inbox_id", "inbox"),
        name=body.name, webhook_id=body.webhook_id, actor=who, origin=call.origin,
    )  # fmt: skip
    return _out(made)


@route(
    "DELETE",
    "/api/v1/inboxes/{inbox_id}/bot",
    permission=Permission.ACCOUNT_MANAGE,
    summary="Detach the bot (its token is revoked; the conversations it held go to people)",
    tag="automation",
    status=204,
)
async def delete_bot_route(call: Call) -> Reply:
    who = call.principal
    await run(
        call, remove_bot, call.hub.presence, account_id=who.account_id,
        inbox_id=path_id(call, "inbox_id", "inbox"), actor=who, origin=call.origin,
    )  # fmt: skip
    call.state.auth.forget()  # the bot's token was revoked
    return Reply(None, 204)


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/handoff",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Move a conversation from its bot to the human queue; assignment runs at once "
    "(409 not_with_bot when no bot holds it)",
    tag="automation",
    reply=HandoffOut,
    errors=(409,),
)
async def handoff_route(call: Call) -> HandoffOut:
    done = await run(
        call, handoff, call.hub.presence, principal=call.principal,
        conversation_id=record_id(call, "conversation_id"), origin=call.origin,
    )  # fmt: skip
    return HandoffOut(done.conversation_id, done.handed_off_at, done.assignee_id)


ROUTES = [get_bot_route, put_bot_route, delete_bot_route, handoff_route]
