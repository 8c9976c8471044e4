"""Every part plugged into the hub, in start order. Adding a part (a consumer of the event stream,
a source of messages, a shared service) is its folder plus one line here."""

from __future__ import annotations

from ai.part import ROLES as AI_ROLES
from ai.part import ai_part
from analytics.part import analytics_part
from automation.parts import assignment_parts, rules_parts, service_level_parts, webhook_parts
from channels.delivery import delivery_part
from channels.email.part import EmailPart
from channels.sip.part import VoicePart
from channels.telegram.part import TelegramWebhooks
from channels.typing import TypingRelay
from crm.archive.part import archive_part
from hub.config import Config
from hub.consumers.claim_pruning import ClaimPruner
from hub.consumers.journal import journal_part
from hub.contracts.part import Part
from hub.snooze_timer import SnoozeTimer
from realtime.part import Live, ReplayLog
from server.worker_process import WorkerProcess


def make_parts(
    config: Config, *, worker_port: int | None = None, worker_child: bool = False
) -> list[Part]:
    """``worker_port``: this process is the gateway of role ``all`` split in two and keeps a
    worker child listening there; ``worker_child``: this process is that child."""
    live = Live(config)
    reports_from = f"http://127.0.0.1:{worker_port}" if worker_port is not None else None
    # what role all runs beyond a plain worker's parts runs in its worker child
    also_worker = frozenset({"worker"}) if worker_child else frozenset()
    return [
        live,  # presence and wake-ups between processes (every role)
        journal_part(),  # event_log: the audit trail and the timeline's system items
        ReplayLog(live),  # the realtime replay log the agent sockets read
        delivery_part(),  # agents' replies out through their channels
        TypingRelay(),  # agents' typing shown to customers (Messenger, Instagram, Telegram)
        # the reports' ClickHouse store, fed from the event stream
        analytics_part(owns_chdb=worker_child, reports_from=reports_from),
        archive_part(),  # raw webhooks and contact profiles kept (PostgreSQL JSONB or MongoDB)
        # language, sentiment, intents, reply suggestions (roles all and ai)
        ai_part(AI_ROLES | also_worker),
        *rules_parts(),  # automation rules: on events and after no reply for N minutes
        *assignment_parts(),  # automatic assignment and its waiting queue
        *service_level_parts(),  # business hours' out-of-office reply, SLA clocks and timer
        *webhook_parts(),  # outgoing webhooks: recorded from the stream, sent by a timer
        SnoozeTimer(),  # reopens snoozed conversations when their time comes (workers)
        ClaimPruner(),  # forgets consumers' claims older than HUB_CLAIM_DAYS (workers)
        VoicePart(VoicePart.roles | also_worker),  # the SIP user agent (all and voice)
        EmailPart(),  # the IMAP readers of the email inboxes (workers)
        TelegramWebhooks(),  # points each Telegram bot's webhook at its inbox (workers)
        # the worker child of a split role all, kept running (gateway)
        *([WorkerProcess(worker_port)] if worker_port is not None else []),
    ]
