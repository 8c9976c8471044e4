"""Changing a conversation: status, assignee, team, labels, priority, snooze.

One action for REST and sockets alike, so every change is checked the same way and announced as
one ``conversation.updated`` event (with the previous values of what changed) on the realtime
stream.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from hub.events import Actor, ActorKind, ConversationStatus, ConversationUpdated, make_event
from hub.events.types import ConversationPatch, ConversationState, Priority
from hub.refusals import CodedRefusal
from hub.store.db import Conn
from hub.store.outbox import append_events


class ConversationRefused(CodedRefusal):
    """``not_found`` (404), ``conflict`` (409) or a 422 for a value that cannot be applied."""


@dataclasses.dataclass(frozen=True)
class Changes:
    """What to change; ``UNSET`` leaves a field as it is, ``None`` clears it."""

    status: str | UnsetType = UNSET
    assignee_id: str | UnsetType | None = UNSET
    team_id: str | UnsetType | None = UNSET
    labels: list[str] | UnsetType = UNSET
    priority: str | UnsetType | None = UNSET
    snoozed_until: datetime | UnsetType | None = UNSET
    muted: bool | UnsetType = UNSET


@dataclasses.dataclass(frozen=True)
class Updated:
    conversation_id: str
    inbox_id: str
    state: ConversationState
    previous: ConversationPatch
    changed: bool


_FIELDS = (
    "status", "assignee_id", "team_id", "labels", "priority", "snoozed_until", "muted",
)  # fmt: skip


def _state(row: Any) -> ConversationState:
    return ConversationState(
        status=ConversationStatus(row["status"]),
        assignee_id=row["assignee_id"],
        team_id=row["team_id"],
        labels=tuple(row["labels"]),
        priority=None if row["priority"] is None else Priority(row["priority"]),
        snoozed_until=row["snoozed_until"],
        muted=row["muted"],
    )


async def _check_assignee(conn: Conn, account_id: str, inbox_id: str, user_id: str) -> None:
    """An enabled user of the account who may see the inbox (same rule as hub.authz)."""
    ok = await conn.fetchval(
        """SELECT u.role = 'administrator'
                  OR EXISTS (SELECT 1 FROM inbox_members im
                              WHERE im.user_id = u.id AND im.inbox_id = $3)
                  OR (u.role = 'supervisor' AND EXISTS (
                        SELECT 1 FROM team_members tm
                          JOIN team_inboxes ti ON ti.team_id = tm.team_id
                         WHERE tm.user_id = u.id AND ti.inbox_id = $3))
             FROM users u
            WHERE u.id = $1 AND u.account_id = $2 AND u.disabled_at IS NULL""",
        user_id,
        account_id,
        inbox_id,
    )
    if ok is None:
        raise ConversationRefused("invalid_assignee", "no such user in this account")
    if not ok:
        raise ConversationRefused("invalid_assignee", "the user has no access to this inbox")


async def _check_labels(conn: Conn, account_id: str, labels: tuple[str, ...]) -> None:
    known = {
        r["name"]
        for r in await conn.fetch(
            "SELECT name FROM labels WHERE account_id = $1 AND name = ANY($2::text[])",
            account_id,
            list(labels),
        )
    }
    unknown = [name for name in labels if name not in known]
    if unknown:
        raise ConversationRefused(
            "unknown_labels", "these labels do not exist", {"labels": unknown}
        )


async def update_conversation(
    conn: Conn,
    *,
    account_id: str,
    agent_id: str,
    conversation_id: str,
    changes: Changes,
    inboxes: frozenset[str] | None = None,
    correlation_id: str | None = None,
    now: datetime | None = None,
    actor: Actor | None = None,
    causation_id: str | None = None,
) -> Updated:
    """Run inside a transaction: row-lock, check, apply, and emit one ``conversation.updated``
    whose ``previous`` holds the old values of exactly the fields that changed (nothing changed:
    no write, no event). Leaving ``snoozed`` clears ``snoozed_until``. ``actor``: who changed it
    when not the agent (the hub itself, for a snooze that ended; a rule); ``causation_id``: the
    event that led to this change (automation's loop protection follows it)."""
    now = now or datetime.now(UTC)
    row = await conn.fetchrow(
        """SELECT inbox_id, contact_id, status, assignee_id, team_id, labels, priority,
                  snoozed_until, muted
             FROM conversations WHERE id = $1 AND account_id = $2 FOR UPDATE""",
        conversation_id,
        account_id,
    )
    if row is None or (inboxes is not None and row["inbox_id"] not in inboxes):
        raise ConversationRefused("not_found", "no such conversation")
    inbox_id: str = row["inbox_id"]
    before = _state(row)

    status = before.status if changes.status is UNSET else ConversationStatus(changes.status)
    snoozed_until = (
        before.snoozed_until if changes.snoozed_until is UNSET else changes.snoozed_until
    )
    if status is ConversationStatus.SNOOZED:
        if snoozed_until is None:
            raise ConversationRefused("invalid_snooze", "snoozing needs snoozed_until")
        if (changes.status is not UNSET or changes.snoozed_until is not UNSET) and (
            snoozed_until <= now
        ):
            raise ConversationRefused("invalid_snooze", "snoozed_until must be in the future")
    elif changes.snoozed_until is not UNSET and changes.snoozed_until is not None:
        raise ConversationRefused("invalid_snooze", "snoozed_until needs status snoozed")
    else:
        snoozed_until = None

    labels = before.labels
    if changes.labels is not UNSET and set(changes.labels) != set(before.labels):
        labels = tuple(sorted(set(changes.labels)))  # a set: order and repeats are no change
    after = ConversationState(
        status=status,
        assignee_id=before.assignee_id if changes.assignee_id is UNSET else changes.assignee_id,
        team_id=before.team_id if changes.team_id is UNSET else changes.team_id,
        labels=labels,
        priority=(
            before.priority
            if changes.priority is UNSET
            else None
            if changes.priority is None
            else Priority(changes.priority)
        ),
        snoozed_until=snoozed_until,
        muted=before.muted if changes.muted is UNSET else changes.muted,
    )
    changed = {f: getattr(before, f) for f in _FIELDS if getattr(before, f) != getattr(after, f)}
    previous = ConversationPatch(**changed)
    if not changed:
        return Updated(conversation_id, inbox_id, before, previous, changed=False)

    if "assignee_id" in changed and after.assignee_id is not None:
        await _check_assignee(conn, account_id, inbox_id, after.assignee_id)
    if "team_id" in changed and after.team_id is not None:
        found = await conn.fetchval(
            "SELECT 1 FROM teams WHERE id = $1 AND account_id = $2", after.team_id, account_id
        )
        if found is None:
            raise ConversationRefused("invalid_team", "no such team in this account")
    if "labels" in changed and after.labels:
        await _check_labels(conn, account_id, after.labels)
    if before.status is ConversationStatus.RESOLVED and "status" in changed:
        # one unresolved conversation per contact and inbox (the threading rule)
        other = await conn.fetchval(
            """SELECT id FROM conversations
                WHERE inbox_id = $1 AND contact_id = $2 AND status <> 'resolved' AND id <> $3""",
            inbox_id,
            row["contact_id"],
            conversation_id,
        )
        if other is not None:
            raise ConversationRefused(
                "conflict",
                "the contact has another unresolved conversation in this inbox",
                {"conversation_id": other},
            )

    await conn.execute(
        """UPDATE conversations
              SET status = $2, assignee_id = $3, team_id = $4, labels = $5::text[],
                  priority = $6, snoozed_until = $7, muted = $8, updated_at = now()
            WHERE id = $1""",
        conversation_id,
        after.status.value,
        after.assignee_id,
        after.team_id,
        list(after.labels),
        None if after.priority is None else after.priority.value,
        after.snoozed_until,
        after.muted,
    )
    event = make_event(
        ConversationUpdated(inbox_id=inbox_id, state=after, previous=previous),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=actor or Actor(ActorKind.AGENT, agent_id),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    await append_events(conn, [event])
    return Updated(conversation_id, inbox_id, after, previous, changed=True)


#: conversations woken in one transaction
WAKE_BATCH = 200


async def wake_snoozed(conn: Conn, now: datetime | None = None) -> int:
    """Reopen conversations whose snooze has ended, as the hub (actor ``system``); the count.

    Run in a transaction. Due rows are locked with ``SKIP LOCKED``, so several workers share the
    work and each conversation wakes exactly once: once reopened it is no longer ``snoozed``, and
    one an agent reopened or re-snoozed meanwhile is not due."""
    now = now or datetime.now(UTC)
    rows = await conn.fetch(
        """SELECT id, account_id FROM conversations
            WHERE status = 'snoozed' AND snoozed_until <= $1
            ORDER BY snoozed_until LIMIT $2
              FOR UPDATE SKIP LOCKED""",
        now,
        WAKE_BATCH,
    )
    for row in rows:
        await update_conversation(
            conn,
            account_id=row["account_id"],
            agent_id="",
            conversation_id=row["id"],
            changes=Changes(status=ConversationStatus.OPEN.value),
            now=now,
            actor=Actor(ActorKind.SYSTEM, None),
        )
    return len(rows)


async def next_wake(conn: Conn) -> datetime | None:
    """When the next snooze ends (the partial index makes this one index probe)."""
    due: datetime | None = await conn.fetchval(
        "SELECT min(snoozed_until) FROM conversations WHERE status = 'snoozed'"
    )
    return due


def patch_fields(previous: ConversationPatch) -> list[str]:
    """The names of the fields a patch holds (what changed)."""
    return [f for f in _FIELDS if getattr(previous, f) is not msgspec.UNSET]
