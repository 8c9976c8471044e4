"""The AI part's REST side: a conversation's latest analysis (language, sentiment trend, intents,
reply suggestions; the same as its last ``message.analysed`` event), which suggestion the agent
used, an extractive summary, and the account's intent labels with their examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from ai.settings_store import delete_intent, last_analysis, list_intents, record_use, set_intent
from ai.summary import Summary, summarise
from gateway.responses import ApiError
from gateway.route import Call, route
from gateway.routes._common import record_id
from hub.authz import Permission
from hub.fields import NO_NUL
from hub.store.db import in_transaction
from hub.store.reads import conversation_exists

IntentLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Example = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NO_NUL)]
Ref = Annotated[str, msgspec.Meta(pattern=r"^(canned|reply|provider):[A-Za-z0-9_-]{1,64}$")]


async def _visible(call: Call) -> str:
    conversation_id = record_id(call, "conversation_id")
    if not await conversation_exists(call.hub.pool, call.principal, conversation_id):
        raise ApiError(404, "not_found", "no such conversation")
    return conversation_id


class Analysis(msgspec.Struct):
    """Empty (all null) until the AI part analysed a customer message of the conversation."""

    message_id: str | None = None
    language: str | None = None
    sentiment: float | None = None
    sentiment_trend: float | None = None
    intents: list[dict[str, Any]] = []
    suggestions: list[dict[str, Any]] = []


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/ai",
    permission=Permission.CONVERSATIONS_READ,
    summary="The AI part's analysis of the conversation's last customer message",
    tag="ai",
    reply=Analysis,
)
async def analysis_route(call: Call) -> Analysis:
    conversation_id = await _visible(call)
    async with call.hub.pool.acquire() as conn:
        found = await last_analysis(conn, conversation_id)
    if found is None:
        return Analysis()
    return msgspec.convert(found, Analysis, strict=False)


class Used(msgspec.Struct, forbid_unknown_fields=True):
    """``ref`` of the suggestion the agent used (as in ``message.analysed``)."""

    ref: Ref


@route(
    "POST",
    "/api/v1/conversations/{conversation_id}/ai/feedback",
    permission=Permission.CONVERSATIONS_WRITE,
    summary="Which reply suggestion the agent used (it ranks higher later)",
    tag="ai",
    body=Used,
    status=204,
)
async def feedback_route(call: Call) -> None:
    await _visible(call)
    body: Used = call.body
    await in_transaction(
        call.hub.pool, record_use, account_id=call.principal.account_id, ref=body.ref
    )


@route(
    "GET",
    "/api/v1/conversations/{conversation_id}/summary",
    permission=Permission.CONVERSATIONS_READ,
    summary="An extractive summary of the conversation (its most telling sentences, as written)",
    tag="ai",
    reply=Summary,
)
async def summary_route(call: Call) -> Summary:
    conversation_id = await _visible(call)
    async with call.hub.pool.acquire() as conn:
        return await summarise(conn, call.principal.account_id, conversation_id)


class IntentBody(msgspec.Struct, forbid_unknown_fields=True):
    examples: Annotated[list[Example], msgspec.Meta(min_length=1, max_length=100)]


class Intent(msgspec.Struct):
    label: str
    examples: list[str]
    updated_at: datetime


class IntentList(msgspec.Struct):
    data: list[Intent]


@route(
    "GET",
    "/api/v1/ai/intents",
    permission=Permission.ACCOUNT_READ,
    summary="The account's intent labels with their example messages",
    tag="ai",
    reply=IntentList,
)
async def list_intents_route(call: Call) -> IntentList:
    async with call.hub.pool.acquire() as conn:
        found = await list_intents(conn, call.principal.account_id)
    return IntentList(data=[Intent(i.label, i.examples, i.updated_at) for i in found])


def _label(call: Call) -> str:
    label = call.path("intent")
    try:
        return msgspec.convert(label, IntentLabel)
    except msgspec.ValidationError as exc:
        raise ApiError(404, "not_found", "no such intent") from exc


@route(
    "PUT",
    "/api/v1/ai/intents/{intent}",
    permission=Permission.LABELS_MANAGE,
    summary="Define an intent label by a few example messages (replaces its examples)",
    tag="ai",
    body=IntentBody,
    reply=Intent,
)
async def set_intent_route(call: Call) -> Intent:
    body: IntentBody = call.body
    saved = await in_transaction(
        call.hub.pool,
        set_intent,
        principal=call.principal,
        label=_label(call),
        examples=body.examples,
        origin=call.origin,
    )
    return Intent(saved.label, saved.examples, saved.updated_at)


@route(
    "DELETE",
    "/api/v1/ai/intents/{intent}",
    permission=Permission.LABELS_MANAGE,
    summary="Remove an intent label",
    tag="ai",
    status=204,
)
async def delete_intent_route(call: Call) -> None:
    done = await in_transaction(
        call.hub.pool,
        delete_intent,
        principal=call.principal,
        label=_label(call),
        origin=call.origin,
    )
    if not done:
        raise ApiError(404, "not_found", "no such intent")


ROUTES = [
    analysis_route,
    feedback_route,
    summary_route,
    list_intents_route,
    set_intent_route,
    delete_intent_route,
]
