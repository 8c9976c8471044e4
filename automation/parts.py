"""The automation part's pieces as the composition root plugs them in (``server/parts.py``)."""

from __future__ import annotations

import asyncio

from automation.assigner import QueueDrainer, assigner_part
from automation.bots import bot_feeder_part
from automation.no_reply import NoReplyTimer, no_reply_waits_part
from automation.out_of_office import out_of_office_part
from automation.rule_engine import rule_engine_part
from automation.sla import SlaTimer, sla_clocks_part
from automation.webhook_recorder import webhook_recorder_part
from automation.webhook_sender import WebhookSender
from hub.contracts.part import Part


def webhook_parts() -> list[Part]:
    """The recorder and the agent bots' feeder (consumers of the stream) and the sender (a
    timer over the rows), sharing a wake-up so a delivery recorded in this process goes out
    without waiting for a poll."""
    recorded = asyncio.Event()
    return [webhook_recorder_part(recorded), bot_feeder_part(recorded), WebhookSender(recorded)]


def rules_parts() -> list[Part]:
    """The rules engine (a consumer of the stream acting through the core's actions), and the
    ``no_reply`` trigger's waits (a consumer) and timer (workers)."""
    return [rule_engine_part(), no_reply_waits_part(), NoReplyTimer()]


def assignment_parts() -> list[Part]:
    """The assigner (a consumer of the stream) and the queue's drainer (a timer)."""
    return [assigner_part(), QueueDrainer()]


def service_level_parts() -> list[Part]:
    """The out-of-office reply (a consumer), the SLA clocks (a consumer starting and stopping
    them) and the SLA timer (workers: warnings and breaches when their time comes)."""
    return [out_of_office_part(), sla_clocks_part(), SlaTimer()]
