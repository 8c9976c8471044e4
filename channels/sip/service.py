"""The voice process: SIP calls in and out of voice inboxes, routed to agents.

It runs in the ``voice`` role (and in ``all`` once a voice inbox exists). It keeps the user
agent's lines in step with the voice inboxes (polled every few seconds, so an administrator's
change needs no restart), turns what the user agent reports into call actions, and listens on the
bus for what agents decide (``call.accepted``, ``call.declined``, ``call.requested``).

An inbound call: INVITE -> 180 Ringing at once -> the call is ingested as a message (contact,
conversation) -> offered to an available agent, whose console rings -> on accept the hub rings
the agent's phone (a second leg) and bridges the two when it answers -> recording if the inbox
records -> hang-up on either side ends both. Nobody available, nobody accepting in time, or every
agent passing: voicemail (greeting, then the caller's message recorded) or 480.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import re
import struct
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import Counter, Gauge, Histogram

from channels._base import InboundMessage, InboxContext, Sender, WebhookRejected
from channels.sip import agent as ua_events
from channels.sip.agent import Line, SipError, SipUserAgent
from channels.sip.routing import pick_agent
from channels.sip.settings import SipSettings, account_password, parse_settings
from hub.actions import calls
from hub.actions.calls import CallRecord
from hub.actions.ingest import IngestRequest
from hub.bus import BusMessage, ConsumerOptions, Subscription
from hub.events.envelope import ActorKind, decode_event, decode_head
from hub.events.types import CONVERSATIONS, CallAccepted, CallDeclined, CallRequested
from hub.media import media_store
from hub.metrics import REGISTRY
from hub.phone import PHONE, to_e164
from hub.store.reads import load_inbox

log = logging.getLogger(__name__)

GROUP = "voice"
SYNC_SECONDS = 5.0
#: what the voice process acts on; every other event is skipped at the cost of a head decode
ACTED_ON = frozenset({"call.accepted", "call.declined", "call.requested"})

SIP_REGISTERED = Gauge(
    "hub_sip_registered",
    "1 while a voice inbox's SIP account is registered at its registrar",
    ["inbox_id", "account"],
    registry=REGISTRY,
)
CALLS_ACTIVE = Gauge("hub_calls_active", "Calls in progress in this process", registry=REGISTRY)
CALLS_TOTAL = Counter(
    "hub_calls_total", "Calls by how they ended", ["direction", "outcome"], registry=REGISTRY
)
CALLS_REFUSED = Counter(
    "hub_calls_refused_total", "INVITEs refused at the door (over capacity)", registry=REGISTRY
)
CALL_SETUP = Histogram(
    "hub_call_setup_seconds",
    "INVITE to the call being offered (or sent to voicemail)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
    registry=REGISTRY,
)

_URI_USER = re.compile(r"sips?:([^@;>]+)@|tel:([^;>\s]+)", re.IGNORECASE)
_DISPLAY = re.compile(r'^\s*"([^"]*)"|^\s*([^<"]+?)\s*<')


def caller_of(remote_uri: str, region: str) -> tuple[str, str, str | None]:
    """(identity channel, address, display name) of a caller: E.164 on ``phone`` when the user
    part (or a ``tel:`` URI) is a phone number, else the raw user part on ``sip`` (an extension,
    ``anonymous``)."""
    match = _URI_USER.search(remote_uri)
    user = (match.group(1) or match.group(2)) if match else "anonymous"
    shown = _DISPLAY.match(remote_uri)
    name = (shown.group(1) or shown.group(2) or "").strip() if shown else ""
    digits = re.sub(r"[\s().-]", "", user)
    e164 = to_e164(digits, region) if re.fullmatch(r"\+?\d{6,16}", digits) else None
    if e164 is not None:
        return PHONE, e164, name or None
    return "sip", user[:64], name or None


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error, EOFError):
        return 0.0


def write_tone(path: Path, seconds: float = 0.6, hz: float = 440.0) -> None:
    """The default voicemail beep (8 kHz, 16-bit mono), written once per data directory."""
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


Job = Callable[[], Awaitable[None]]


class _Lane:
    """One call's work in order: its legs' SIP events, its timers and agents' decisions. Calls
    run side by side; the steps of one call never overlap."""

    def __init__(self) -> None:
        self.legs: set[str] = set()
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name="voice-call")

    def put(self, job: Job) -> None:
        self._queue.put_nowait(job)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def _run(self) -> None:
        while (job := await self._queue.get()) is not None:
            try:
                await job()
            except Exception:  # one step's failure must not stop the call's later steps
                log.exception("voice call step failed")


@dataclasses.dataclass
class _Inbox:
    context: InboxContext
    settings: SipSettings
    fingerprint: str
    registrations: dict[str, bool] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Call:
    record: CallRecord
    inbox: _Inbox
    caller_leg: str | None
    started: float
    lane: _Lane
    outbound: bool = False
    stage: str = "routing"
    agent_id: str | None = None
    agent_uri: str | None = None
    agent_leg: str | None = None
    tried: list[str] = dataclasses.field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    answered_at: float | None = None
    caller_answered: bool = False
    recorder: str | None = None
    recording: Path | None = None
    recording_kind: str = "call"
    player: str | None = None
    hung_up_by_hub: bool = False
    setup_timed: bool = False

    def later(self, delay: float, job: Job) -> None:
        """Run ``job`` in the call's lane after ``delay`` seconds (replacing the last timer)."""
        self.cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(delay, self.lane.put, job)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class VoiceService:
    def __init__(self, hub: Any, *, max_calls: int = 16) -> None:
        self.hub = hub
        self.ua = SipUserAgent(
            max_calls=max_calls,
            log_file=str(Path(hub.config.data_dir) / "voice" / "pjsip.log"),
        )
        self._started_ua = False
        self._inboxes: dict[str, _Inbox] = {}
        self._calls: dict[str, _Call] = {}
        #: callers per inbox let in and still being stored (not yet in ``_calls``)
        self._admitting: collections.Counter[str] = collections.Counter()
        self._by_leg: dict[str, _Call] = {}
        #: the lane of every live leg (a leg's events go to its call's lane)
        self._lanes: dict[str, _Lane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        #: set whenever no call is in progress (what a graceful stop waits for)
        self._idle = asyncio.Event()
        self._dir = Path(hub.config.data_dir) / "voice"
        self._tone = self._dir / "beep.wav"
        self._store = media_store(hub.config.data_dir)

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        if not self._tone.exists():
            await asyncio.to_thread(write_tone, self._tone)
        await self.sync()
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="voice-sync"))

    async def _start_ua(self) -> None:
        """Once the first voice inbox exists: a hub without one runs no SIP stack at all."""
        await self.ua.start()
        self._started_ua = True
        self._tasks.append(asyncio.create_task(self._events(), name="voice-events"))
        bus = self.hub.bus
        if bus is not None:
            transient = (ConnectionError, TimeoutError, OSError)
            self._subscription = await bus.subscribe(
                CONVERSATIONS,
                GROUP,
                self._on_bus,
                ConsumerOptions(max_batch=200, transient=transient),
            )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()
        for task in self._tasks:
            task.cancel()
        for call in list(self._calls.values()):
            call.hung_up_by_hub = True
            for leg in (call.caller_leg, call.agent_leg):
                if leg:
                    with contextlib.suppress(SipError):
                        await self.ua.hangup(leg, 503)
        # the user agent reports the hang-ups; give them a moment to be recorded
        if self._calls:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 3)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._started_ua:
            await self.ua.stop()
        for call in list(self._calls.values()):
            await self._finish(call, "503 Voice process stopped", "hub")
        for lane in set(self._lanes.values()):
            lane.close()
        self._lanes.clear()

    @property
    def running(self) -> bool:
        return self._started_ua

    def status(self) -> dict[str, Any]:
        return {
            "inboxes": len(self._inboxes),
            "calls": len(self._calls),
            "registered": sum(v for i in self._inboxes.values() for v in i.registrations.values()),
            "accounts": sum(len(i.registrations) for i in self._inboxes.values()),
        }

    def _attach(self, call: _Call, leg: str) -> None:
        self._by_leg[leg] = call
        self._lanes[leg] = call.lane
        call.lane.legs.add(leg)

    def _detach(self, call: _Call, leg: str) -> None:
        """A leg that was never placed: it will report nothing."""
        self._by_leg.pop(leg, None)
        self._lanes.pop(leg, None)
        call.lane.legs.discard(leg)

    # --- keeping lines in step with the voice inboxes ------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                await self.sync()
            except Exception:
                log.exception("voice inbox sync failed")

    async def sync(self) -> None:
        """Bring the lines in step with the voice inboxes now (also done every few seconds)."""
        pool = self.hub.pool
        voice = "SELECT id FROM inboxes WHERE channel = 'sip' AND disabled_at IS NULL"
        ids = [r["id"] for r in await pool.fetch(voice)]
        seen: set[str] = set()
        for inbox_id in ids:
            context = await load_inbox(pool, self.hub.box, inbox_id)
            if context is None:
                continue
            try:
                settings = parse_settings(context.settings)
            except (msgspec.ValidationError, ValueError) as exc:
                log.warning(
                    "voice inbox settings unusable", extra={"inbox": inbox_id, "error": str(exc)}
                )
                continue
            seen.add(inbox_id)
            fingerprint = hashlib.sha256(
                msgspec.json.encode([context.settings, context.secrets])
            ).hexdigest()
            current = self._inboxes.get(inbox_id)
            if current is not None and current.fingerprint == fingerprint:
                current.context = context
                continue
            if not self._started_ua:
                await self._start_ua()
            if current is not None:
                await self.ua.remove_lines(inbox_id)
            inbox = _Inbox(context, settings, fingerprint)
            self._inboxes[inbox_id] = inbox
            for line in self._lines(inbox):
                try:
                    await self.ua.add_line(line)
                except SipError as exc:
                    log.error(
                        "voice line not started", extra={"inbox": inbox_id, "error": str(exc)}
                    )
                if line.registrar:
                    inbox.registrations.setdefault(line.uri, False)
            log.info("voice inbox ready", extra={"inbox": inbox_id, "mode": settings.mode})
        for inbox_id in set(self._inboxes) - seen:
            self._inboxes.pop(inbox_id)
            await self.ua.remove_lines(inbox_id)

    def _lines(self, inbox: _Inbox) -> list[Line]:
        s = inbox.settings
        if s.mode == "listen":
            return [Line(inbox.context.id, s.bind, s.port, s.user)]
        return [
            Line(
                inbox.context.id,
                s.bind,
                s.port,
                a.username,
                registrar=s.registrar,
                auth_user=a.auth_username,
                password=account_password(inbox.context.secrets, a.username),
                domain=s.domain,
                expires_s=s.expires_s,
                retry_s=s.retry_s,
            )
            for a in s.sip_accounts()
        ]

    # --- what the user agent reports ------------------------------------------------------------

    async def _events(self) -> None:
        """Hand each event to its call's lane; registrations are handled here."""
        while True:
            event = await self.ua.events.get()
            if isinstance(event, ua_events.Registration):
                try:
                    await self._registration(event)
                except Exception:  # the next refresh reports again
                    log.exception("sip registration not recorded")
                continue
            if isinstance(event, ua_events.Incoming):
                lane = _Lane()
                lane.legs.add(event.leg)
                self._lanes[event.leg] = lane
                lane.put(functools.partial(self._incoming, event, lane))
                continue
            found = self._lanes.get(event.leg)
            if found is None:
                continue
            found.put(functools.partial(self._handle, event))
            if isinstance(event, ua_events.Disconnected):
                self._lanes.pop(event.leg, None)
                found.legs.discard(event.leg)
                if not found.legs:
                    found.close()

    async def _handle(self, event: ua_events.UaEvent) -> None:
        match event:
            case ua_events.Confirmed():
                call = self._by_leg.get(event.leg)
                if call is not None:
                    await self._confirmed(call, event.leg)
            case ua_events.Disconnected():
                call = self._by_leg.pop(event.leg, None)
                if call is not None:
                    await self._disconnected(call, event)
            case ua_events.Dtmf():
                call = self._by_leg.get(event.leg)
                if call is not None and event.leg == call.caller_leg:
                    await self._dtmf(call, event.digit)
            case ua_events.TransferStatus():
                call = self._by_leg.get(event.leg)
                if call is not None:
                    await self._transfer_status(call, event)

    async def _registration(self, event: ua_events.Registration) -> None:
        inbox = self._inboxes.get(event.inbox_id)
        if inbox is not None:
            inbox.registrations[event.account_uri] = event.registered
        SIP_REGISTERED.labels(event.inbox_id, event.account_uri).set(int(event.registered))
        log.info(
            "sip registration",
            extra={
                "inbox": event.inbox_id,
                "account": event.account_uri,
                "registered": event.registered,
                "status": event.status,
                "reason": event.reason,
            },
        )
        await self.hub.pool.execute(
            """INSERT INTO sip_registrations (inbox_id, account_uri, registered, status_code,
                                              reason, expires_s, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, now())
               ON CONFLICT (inbox_id, account_uri) DO UPDATE
                  SET registered = $3, status_code = $4, reason = $5, expires_s = $6,
                      updated_at = now()""",
            event.inbox_id,
            event.account_uri,
            event.registered,
            event.status,
            event.reason[:200],
            event.expires_s,
        )

    async def _incoming(self, event: ua_events.Incoming, lane: _Lane) -> None:
        started = event.received
        inbox = self._inboxes.get(event.inbox_id)
        if inbox is None:
            await self.ua.hangup(event.leg, 404)
            return
        # a slot is taken before the first await: callers arriving together are counted
        # against the limit while the earlier ones are still being stored
        admitting = self._admitting
        in_inbox = admitting[event.inbox_id] + sum(
            1 for c in self._calls.values() if c.inbox is inbox
        )
        in_process = len(self._calls) + admitting.total()
        if in_inbox >= inbox.settings.max_calls or in_process >= self.ua.max_calls:
            CALLS_REFUSED.inc()
            await self.ua.hangup(event.leg, 486)
            return
        admitting[event.inbox_id] += 1
        try:
            call = await self._admit(event, inbox, lane, started)
        finally:
            admitting[event.inbox_id] -= 1
        if call is None:
            return
        if inbox.settings.ivr:
            await self._ivr(call)
        else:
            await self._route(call)

    async def _admit(
        self, event: ua_events.Incoming, inbox: _Inbox, lane: _Lane, started: float
    ) -> _Call | None:
        """Store the call (its message and row) and take it into ``_calls``; ``None`` when it
        was hung up instead."""
        channel, address, name = caller_of(event.remote_uri, inbox.settings.default_region)
        shown = address if channel == "phone" else f"{address} (SIP)"
        try:
            message = InboundMessage(
                provider_message_id=f"call:{event.sip_call_id}"[:200],
                sender=Sender(channel, address, name),
                content=f"Incoming call from {shown}",
                content_type="call",
            )
        except WebhookRejected:  # a caller id or call id the store would refuse (a NUL)
            await self.ua.hangup(event.leg, 400)
            return None
        result = await self.hub.ingest.submit(IngestRequest(inbox.context, message))
        record, new = await calls.open_call(
            self.hub.pool,
            account_id=inbox.context.account_id,
            inbox_id=inbox.context.id,
            conversation_id=result.conversation_id,
            contact_id=result.contact_id,
            message_id=result.message_id,
            sip_call_id=event.sip_call_id[:200],
            number=address,
        )
        if not new or record.state == "ended":
            await self.ua.hangup(event.leg, 482)  # a loop or a repeat of a call already handled
            return None
        call = _Call(record, inbox, event.leg, started, lane)
        self._calls[record.id] = call
        self._attach(call, event.leg)
        CALLS_ACTIVE.set(len(self._calls))
        return call

    async def _ivr(self, call: _Call) -> None:
        """Answer and play the menu; a digit picks a team, silence routes to the whole inbox."""
        call.stage = "ivr"
        assert call.caller_leg is not None
        await self.ua.answer(call.caller_leg, 200)
        call.caller_answered = True
        await calls.answered(self.hub.pool, call.record.id, "ivr")
        greeting = await self._greeting(call.inbox.settings.ivr_greeting)
        call.player = await self.ua.play(call.caller_leg, str(greeting))
        wait = wav_seconds(greeting) + call.inbox.settings.ivr_wait_seconds
        call.later(wait, functools.partial(self._ivr_done, call, None))

    async def _ivr_done(self, call: _Call, digit: str | None) -> None:
        if call.stage != "ivr":
            return
        call.cancel_timer()
        await self._release_player(call)
        team = call.inbox.settings.ivr_menu().get(digit or "")
        if team:
            call.record = dataclasses.replace(call.record, team_id=team)
            await calls.set_team(self.hub.pool, call.record.id, team)
        call.stage = "routing"
        await self._route(call)

    async def _route(self, call: _Call) -> None:
        """Offer the call to the next available agent; nobody: voicemail (or 480)."""
        if call.stage == "ended":
            return
        s = call.inbox.settings
        candidate = await pick_agent(
            self.hub.pool,
            self.hub.presence,
            account_id=call.record.account_id,
            inbox_id=call.record.inbox_id,
            team_id=call.record.team_id,
            exclude=tuple(call.tried),
            strategy=s.strategy,
        )
        if candidate is None:
            await self._no_agent(call)
            return
        expires = datetime.now(UTC) + timedelta(seconds=s.ring_seconds)
        offered = await calls.offer(self.hub.pool, call.record.id, candidate.agent_id, expires)
        if offered is None:
            return
        self._setup_done(call)
        call.stage = "offered"
        call.agent_id = candidate.agent_id
        call.agent_uri = candidate.sip_uri
        call.later(s.ring_seconds, functools.partial(self._rang_out, call, candidate.agent_id))

    def _setup_done(self, call: _Call) -> None:
        if not call.setup_timed:
            call.setup_timed = True
            CALL_SETUP.observe(time.monotonic() - call.started)

    async def _rang_out(self, call: _Call, agent_id: str) -> None:
        if call.stage != "offered" or call.agent_id != agent_id:
            return
        if await calls.decline(self.hub.pool, None, call.record.id, agent_id, "no_answer"):
            await self._next(call, agent_id)

    async def _next(self, call: _Call, agent_id: str) -> None:
        call.cancel_timer()
        call.tried.append(agent_id)
        call.agent_id = call.agent_uri = None
        call.stage = "routing"
        await self._route(call)

    async def _no_agent(self, call: _Call) -> None:
        self._setup_done(call)
        if call.outbound:
            return
        if not call.inbox.settings.voicemail:
            call.hung_up_by_hub = True
            assert call.caller_leg is not None
            await self.ua.hangup(call.caller_leg, 480)
            return
        reason = "declined" if call.tried else "no_agent"
        if not await calls.to_voicemail(self.hub.pool, call.record.id, reason):
            return
        call.stage = "voicemail"
        assert call.caller_leg is not None
        if not call.caller_answered:
            await self.ua.answer(call.caller_leg, 200)
            call.caller_answered = True
        await calls.answered(self.hub.pool, call.record.id, "voicemail")
        greeting = await self._greeting(call.inbox.settings.voicemail_greeting)
        call.player = await self.ua.play(call.caller_leg, str(greeting))
        call.later(wav_seconds(greeting), functools.partial(self._record_voicemail, call))

    async def _record_voicemail(self, call: _Call) -> None:
        if call.stage != "voicemail" or call.caller_leg is None:
            return
        await self._release_player(call)
        recording = self._dir / f"{call.record.id}-voicemail.wav"
        try:
            call.recorder = await self.ua.record((call.caller_leg,), str(recording))
        except SipError:
            # the caller hung up during the greeting (its end is on its way): nothing to keep
            log.info("voice: the caller left during the greeting", extra={"call": call.record.id})
            return
        call.recording = recording
        call.recording_kind = "voicemail"
        call.answered_at = call.answered_at or time.monotonic()
        call.later(
            call.inbox.settings.voicemail_max_seconds,
            functools.partial(self._hangup, call, call.caller_leg),
        )

    async def _hangup(self, call: _Call, leg: str) -> None:
        call.hung_up_by_hub = True
        with contextlib.suppress(SipError):
            await self.ua.hangup(leg)

    async def _greeting(self, media_key: str) -> Path:
        """A WAV from the media store as a local file pjmedia can play; the beep otherwise."""
        if not media_key:
            return self._tone
        path = self._dir / f"greeting-{media_key}.wav"
        if path.exists():
            return path
        try:
            data = bytearray()
            async for chunk in self._store.open(media_key):
                data += chunk
            partial = path.with_suffix(".partial")
            await asyncio.to_thread(partial.write_bytes, bytes(data))
            await asyncio.to_thread(partial.replace, path)
            return path
        except Exception as exc:
            log.warning("greeting not playable", extra={"media": media_key, "error": repr(exc)})
            return self._tone

    async def _dtmf(self, call: _Call, digit: str) -> None:
        await calls.dtmf(self.hub.pool, call.record.id, digit)
        if call.stage == "ivr":
            await self._ivr_done(call, digit)

    # --- agents' decisions, from the bus -------------------------------------------------------

    async def _on_bus(self, batch: Sequence[BusMessage]) -> None:
        for message in batch:
            head = decode_head(message.value)
            if head.type not in ACTED_ON:
                continue
            event = decode_event(message.value)
            payload = event.payload
            if isinstance(payload, CallAccepted | CallDeclined):
                call = self._calls.get(payload.call_id)
                if call is None:
                    continue  # another voice process's call, or one already over
                if isinstance(payload, CallAccepted):
                    call.lane.put(functools.partial(self._accepted, call, payload.agent_id))
                elif event.actor.kind == ActorKind.AGENT:
                    call.lane.put(functools.partial(self._declined, call, payload.agent_id))
            elif isinstance(payload, CallRequested) and payload.call_id not in self._calls:
                lane = _Lane()
                lane.put(functools.partial(self._requested, payload.call_id, lane))

    async def _accepted(self, call: _Call, agent_id: str) -> None:
        if call.stage != "offered" or call.agent_id != agent_id:
            return  # a redelivery, or the offer rang out meanwhile
        call.cancel_timer()
        assert call.agent_uri is not None and call.caller_leg is not None
        if call.inbox.settings.connect == "refer":
            call.stage = "referring"
            if not call.caller_answered:
                await self.ua.answer(call.caller_leg, 200)
                call.caller_answered = True
            await self.ua.refer(call.caller_leg, call.agent_uri)
            return
        call.stage = "connecting"
        await self._dial_agent(call)

    async def _dial_agent(self, call: _Call) -> None:
        assert call.agent_uri is not None and call.agent_id is not None
        leg = self.ua.new_leg()
        self._attach(call, leg)
        call.agent_leg = leg
        try:
            await self.ua.dial(call.record.inbox_id, call.agent_uri, leg)
        except SipError as exc:
            self._detach(call, leg)
            call.agent_leg = None
            log.warning(
                "agent phone not dialled", extra={"call": call.record.id, "error": str(exc)}
            )
            if await calls.decline(
                self.hub.pool, None, call.record.id, call.agent_id, "unreachable"
            ):
                await self._next(call, call.agent_id)
            return
        call.later(call.inbox.settings.ring_seconds, functools.partial(self._hangup, call, leg))

    async def _declined(self, call: _Call, agent_id: str) -> None:
        if call.stage != "offered" or call.agent_id != agent_id:
            return
        await self._next(call, agent_id)

    async def _requested(self, call_id: str, lane: _Lane) -> None:
        """Click-to-call: ring the agent's phone first; the customer when the agent answers."""
        record = await calls.get_call(self.hub.pool, call_id)
        inbox = self._inboxes.get(record.inbox_id) if record is not None else None
        if (
            record is None
            or inbox is None
            or record.state != "requested"
            or record.agent_id is None
            or call_id in self._calls
        ):
            lane.close()
            return
        uri = await self.hub.pool.fetchval(
            "SELECT sip_uri FROM users WHERE id = $1", record.agent_id
        )
        call = _Call(record, inbox, None, time.monotonic(), lane, outbound=True)
        call.stage = "connecting"
        call.agent_id = record.agent_id
        call.agent_uri = uri
        self._calls[call_id] = call
        CALLS_ACTIVE.set(len(self._calls))
        leg = self.ua.new_leg()
        self._attach(call, leg)
        call.agent_leg = leg
        try:
            await self.ua.dial(record.inbox_id, str(uri), leg)
        except SipError as exc:
            self._detach(call, leg)
            call.agent_leg = None
            log.warning("click-to-call failed", extra={"call": call_id, "error": str(exc)})
            await self._finish(call, f"503 {exc}"[:120], "hub")
            return
        call.later(inbox.settings.ring_seconds, functools.partial(self._hangup, call, leg))

    def _customer_uri(self, call: _Call) -> str:
        s = call.inbox.settings
        host = (s.domain or s.registrar_host) if s.mode == "register" else s.pbx
        return f"sip:{call.record.number}@{host}"

    # --- call progress --------------------------------------------------------------------------

    async def _confirmed(self, call: _Call, leg: str) -> None:
        pool = self.hub.pool
        if leg == call.agent_leg and call.stage == "connecting":
            call.cancel_timer()
            assert call.agent_id is not None and call.agent_uri is not None
            if call.outbound:
                # the agent picked up: now the customer
                call.stage = "dialling"
                customer = self.ua.new_leg()
                self._attach(call, customer)
                call.caller_leg = customer
                try:
                    await self.ua.dial(call.record.inbox_id, self._customer_uri(call), customer)
                except SipError as exc:
                    self._detach(call, customer)
                    call.caller_leg = None
                    log.warning(
                        "customer not dialled", extra={"call": call.record.id, "error": str(exc)}
                    )
                    await self._hangup(call, leg)
                    return
                await calls.dialling(pool, call.record.id, f"leg:{customer}:{call.record.id}")
                call.later(
                    call.inbox.settings.ring_seconds,
                    functools.partial(self._hangup, call, customer),
                )
                return
            assert call.caller_leg is not None
            if not call.caller_answered:
                await self.ua.answer(call.caller_leg, 200)
                call.caller_answered = True
            await self._join(call)
        elif leg == call.caller_leg and call.outbound and call.stage == "dialling":
            call.cancel_timer()
            await self._join(call)

    async def _join(self, call: _Call) -> None:
        assert call.caller_leg and call.agent_leg and call.agent_id and call.agent_uri
        await self.ua.bridge(call.caller_leg, call.agent_leg)
        call.stage = "bridged"
        call.answered_at = time.monotonic()
        if call.inbox.settings.record:
            call.recording = self._dir / f"{call.record.id}-call.wav"
            call.recording_kind = "call"
            call.recorder = await self.ua.record(
                (call.caller_leg, call.agent_leg), str(call.recording)
            )
        await calls.answered(self.hub.pool, call.record.id, "agent", call.agent_id)
        if not call.outbound:  # a caller put through to the agent's phone
            await calls.transferred(
                self.hub.pool, call.record.id, call.agent_uri, "bridge", call.agent_id
            )

    async def _transfer_status(self, call: _Call, event: ua_events.TransferStatus) -> None:
        if call.stage != "referring" or not event.final:
            return
        if 200 <= event.status < 300:
            call.stage = "transferred"
            call.answered_at = time.monotonic()
            await calls.answered(self.hub.pool, call.record.id, "agent", call.agent_id)
            assert call.agent_uri is not None
            await calls.transferred(
                self.hub.pool, call.record.id, call.agent_uri, "refer", call.agent_id
            )
            assert call.caller_leg is not None
            await self._hangup(call, call.caller_leg)  # the PBX has the call now
        else:
            assert call.agent_id is not None
            if await calls.decline(
                self.hub.pool, None, call.record.id, call.agent_id, "unreachable"
            ):
                await self._next(call, call.agent_id)

    async def _disconnected(self, call: _Call, event: ua_events.Disconnected) -> None:
        cause = f"{event.status} {event.reason}".strip()
        if event.leg == call.agent_leg:
            call.agent_leg = None
            if call.stage == "connecting" and not call.outbound:
                # the agent's phone was busy, rejected or did not answer: next agent
                assert call.agent_id is not None
                if await calls.decline(
                    self.hub.pool, None, call.record.id, call.agent_id, "unreachable"
                ):
                    await self._next(call, call.agent_id)
                return
            if call.caller_leg is not None and call.caller_leg in self._by_leg:
                await self._hangup_quietly(call.caller_leg)
                # the caller's leg reports its own end; the agent hung up first
                call.stage = "ending:agent"
                return
            await self._finish(call, cause, "agent")
            return
        if event.leg == call.caller_leg:
            call.caller_leg = None
            if call.agent_leg is not None and call.agent_leg in self._by_leg:
                self._by_leg.pop(call.agent_leg, None)
                await self._hangup_quietly(call.agent_leg)
            if call.stage == "transferred":
                ended_by = "transfer"
            elif call.stage == "ending:agent":
                ended_by = "agent"
            elif call.hung_up_by_hub:
                ended_by = "hub"
            elif call.outbound and call.stage == "dialling":
                ended_by = "customer"
            else:
                ended_by = "caller" if not call.outbound else "customer"
            await self._finish(call, cause, ended_by)

    async def _hangup_quietly(self, leg: str) -> None:
        with contextlib.suppress(SipError):
            await self.ua.hangup(leg)

    async def _release_player(self, call: _Call) -> None:
        if call.player is not None:
            player, call.player = call.player, None
            with contextlib.suppress(SipError):
                await self.ua.release(player)

    async def _finish(self, call: _Call, cause: str, ended_by: str) -> None:
        if call.stage == "ended":
            return
        call.cancel_timer()
        call.stage = "ended"
        self._calls.pop(call.record.id, None)
        for leg in (call.caller_leg, call.agent_leg):
            if leg:
                self._by_leg.pop(leg, None)
        if not call.lane.legs:  # no leg left to report its end: nothing more will come
            call.lane.close()
        CALLS_ACTIVE.set(len(self._calls))
        if not self._calls:
            self._idle.set()
        await self._release_player(call)
        if call.recorder is not None:
            with contextlib.suppress(SipError):
                await self.ua.release(call.recorder)
        answered = call.answered_at is not None
        duration = time.monotonic() - call.answered_at if call.answered_at is not None else 0.0
        if call.recording_kind == "voicemail" and call.recording is not None:
            duration = wav_seconds(call.recording)
        await calls.ended(
            self.hub.pool,
            call.record.id,
            answered=answered,
            duration_s=duration,
            hangup_cause=cause[:120],
            ended_by=ended_by,
        )
        outcome = call.recording_kind if call.recording else ("answered" if answered else "missed")
        CALLS_TOTAL.labels("outbound" if call.outbound else "inbound", outcome).inc()
        if call.recording is not None:
            await self._keep_recording(call, call.recording, call.recording_kind)

    async def _keep_recording(self, call: _Call, path: Path, kind: str) -> None:
        """Into the media store and onto the timeline; the local WAV is removed once stored."""
        seconds = await asyncio.to_thread(wav_seconds, path)
        if seconds <= 0 or call.record.message_id is None:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return
        stored = await self._store.put(
            call.record.account_id, path.name, "audio/wav", _chunks(path)
        )
        await calls.recording_ready(self.hub.pool, call.record.id, kind, stored, seconds)
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, 64 * 1024):
            yield chunk
    finally:
        fh.close()
