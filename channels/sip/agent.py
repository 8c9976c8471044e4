"""The SIP user agent: pjsua2 on a thread of its own, driven from asyncio.

pjlib keeps its own threads and may only be called from threads it knows, so every pjsua2 call
happens on one thread this module starts (``sip-ua``). It polls pjsip without waiting
(``libHandleEvents(0)``: the pinned wheel holds the GIL for as long as that call waits, which
would stall the event loop), runs the commands asyncio sends it, and sleeps briefly (releasing
the GIL) when there was nothing to do.
asyncio awaits a command's result through a future; what pjsip reports (an INVITE, a call's
state, media, DTMF, registration) arrives on :attr:`SipUserAgent.events` through
``call_soon_threadsafe``. Neither side ever blocks the other.

Calls are known to the rest of the hub by a *leg* id of ours: the caller's call is one leg; the
hub's call to an agent's phone is another, bridged to the first in pjmedia's conference bridge.
Audio never touches Python: players, recorders and bridges are pjmedia ports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the pause between pjsip polls when nothing happened; SIP events and commands from asyncio
#: wait at most about this long
IDLE_SLEEP = 0.002
#: pjsip polls in a row before asyncio gets the GIL back, under load
MAX_POLLS = 32
#: calls (legs) pjsua can hold at once: PJSUA_MAX_CALLS as the pinned pjsua2-python wheel is
#: built (requirements/voice.txt); pjsua lowers a larger ``maxCalls`` to it without a word
MAX_LEGS = 32


@dataclasses.dataclass(frozen=True)
class Line:
    """One SIP account of a voice inbox: an extension registered at a PBX or trunk, or a local
    address the PBX sends INVITEs to (``registrar`` empty)."""

    inbox_id: str
    host: str
    port: int
    user: str
    registrar: str = ""
    auth_user: str = ""
    password: str = ""
    domain: str = ""
    expires_s: int = 300
    retry_s: int = 30

    @property
    def uri(self) -> str:
        if self.registrar:
            return f"sip:{self.user}@{self.domain or _host_of(self.registrar)}"
        return f"sip:{self.user}@{self.host}:{self.port}"


def _host_of(uri: str) -> str:
    """The host of a SIP URI without its port: the domain of an address of record."""
    return uri.split(":", 1)[-1].split(";", 1)[0].rsplit(":", 1)[0]


# --- what the user agent reports ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Incoming:
    leg: str
    inbox_id: str
    sip_call_id: str
    remote_uri: str
    #: when pjsip handed the INVITE over (time.monotonic), for the call-setup time
    received: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(frozen=True)
class Confirmed:
    leg: str


@dataclasses.dataclass(frozen=True)
class Disconnected:
    leg: str
    status: int
    reason: str
    connected_s: float


@dataclasses.dataclass(frozen=True)
class Dtmf:
    leg: str
    digit: str


@dataclasses.dataclass(frozen=True)
class TransferStatus:
    leg: str
    status: int
    final: bool


@dataclasses.dataclass(frozen=True)
class Registration:
    inbox_id: str
    account_uri: str
    registered: bool
    status: int
    reason: str
    expires_s: int


UaEvent = Incoming | Confirmed | Disconnected | Dtmf | TransferStatus | Registration


class SipError(Exception):
    """pjsua2 refused a command (``pj.Error`` carries its reason)."""


_REQUEST_PORT = re.compile(r"^INVITE\s+sips?:[^\s;>]*?@?[^\s:;>@]+:(\d+)", re.IGNORECASE)


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, ua: SipUserAgent, line: Line) -> None:
        super().__init__()
        self.ua = ua
        self.line = line

    def onIncomingCall(self, prm: Any) -> None:
        self.ua._pj_incoming(self, prm)

    def onRegState(self, prm: Any) -> None:
        registered = 200 <= prm.code < 300 and prm.expiration > 0
        self.ua._post(
            Registration(
                self.line.inbox_id,
                self.line.uri,
                registered,
                int(prm.code),
                str(prm.reason),
                int(prm.expiration),
            )
        )


class _Leg(pj.Call):  # type: ignore[misc]
    def __init__(self, ua: SipUserAgent, acc: _Account, leg_id: str, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.ua = ua
        self.leg_id = leg_id
        self.line = acc.line
        self.audio: Any = None
        #: what waits for this leg's audio (bridges, players, recorders)
        self.on_audio: list[Callable[[], None]] = []
        self.ended = False
        self.inbound = False

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.ua._post(Confirmed(self.leg_id))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.audio = None
            duration = info.connectDuration.sec + info.connectDuration.msec / 1000
            self.ua._post(
                Disconnected(self.leg_id, int(info.lastStatusCode), info.lastReason, duration)
            )
            # pjsua2 must not see its Call object deleted inside its own callback
            self.ua._pj_forget(self.leg_id)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if (
                media.type == pj.PJMEDIA_TYPE_AUDIO
                and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                and self.audio is None
            ):
                self.audio = self.getAudioMedia(media.index)
                waiting, self.on_audio = self.on_audio, []
                for action in waiting:
                    try:
                        action()
                    except pj.Error as exc:
                        log.warning("sip media action failed", extra={"error": exc.info()})

    def onDtmfDigit(self, prm: Any) -> None:
        # called on pjmedia's thread: only hand it over
        self.ua._post(Dtmf(self.leg_id, str(prm.digit)))

    def onCallTransferStatus(self, prm: Any) -> None:
        self.ua._post(TransferStatus(self.leg_id, int(prm.statusCode), bool(prm.finalNotify)))

    def when_audio(self, action: Callable[[], None]) -> None:
        if self.audio is not None:
            action()
        else:
            self.on_audio.append(action)


class SipUserAgent:
    """One pjsua2 endpoint per process. ``max_calls`` bounds the callers' legs alive at once: an
    INVITE beyond it is answered 486 Busy Here (the hub is full; the PBX can route it elsewhere)."""

    def __init__(
        self, *, max_calls: int = 16, rtp_port: int = 0, log_level: int = 3, log_file: str = ""
    ) -> None:
        # half the legs: every call may need a second leg to an agent's phone
        self.max_calls = min(max_calls, MAX_LEGS // 2)
        self.rtp_port = rtp_port
        self.log_level = log_level
        self.log_file = log_file
        self.events: asyncio.Queue[UaEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._commands = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._ids = itertools.count(1)
        # pjsip-thread state
        self._ep: Any = None
        self._accounts: dict[str, list[_Account]] = {}
        self._transports: dict[str, list[int]] = {}
        self._legs: dict[str, _Leg] = {}
        self._dead: list[_Leg] = []
        self._ports: dict[str, Any] = {}

    # --- asyncio side ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(started,), name="sip-ua")
        self._thread.daemon = True
        self._thread.start()
        await asyncio.wrap_future(started)

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping = True
        await asyncio.to_thread(self._thread.join, 10)
        self._thread = None

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the pjsip thread; its ``pj.Error`` comes back as :class:`SipError`."""
        if self._thread is None:
            raise SipError("the SIP user agent is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._commands.put((fn, future))
        return await asyncio.wrap_future(future)

    async def add_line(self, line: Line) -> None:
        await self.run(lambda: self._pj_add_line(line))

    async def remove_lines(self, inbox_id: str) -> None:
        await self.run(lambda: self._pj_remove_lines(inbox_id))

    async def answer(self, leg: str, status: int = 200) -> None:
        await self.run(lambda: self._pj_answer(leg, status))

    async def hangup(self, leg: str, status: int = 0) -> None:
        await self.run(lambda: self._pj_hangup(leg, status))

    def new_leg(self) -> str:
        """An id for a leg about to be dialled, so its events can be routed before it exists."""
        return f"L{next(self._ids)}"

    async def dial(self, inbox_id: str, uri: str, leg_id: str) -> None:
        """Call ``uri`` from the inbox's first line as ``leg_id``; its progress arrives as
        events."""
        await self.run(lambda: self._pj_dial(inbox_id, uri, leg_id))

    async def bridge(self, a: str, b: str) -> None:
        await self.run(lambda: self._pj_bridge(a, b))

    async def record(self, legs: tuple[str, ...], path: str) -> str:
        """Start a WAV recorder fed by the legs' audio (mixed); returns its handle."""
        return await self.run(lambda: self._pj_record(legs, path))

    async def play(self, leg: str, path: str) -> str:
        return await self.run(lambda: self._pj_play(leg, path))

    async def release(self, handle: str) -> None:
        """Stop a recorder (its WAV is complete afterwards) or a player."""
        await self.run(lambda: self._pj_release(handle))

    async def refer(self, leg: str, uri: str) -> None:
        await self.run(lambda: self._pj_refer(leg, uri))

    async def active_legs(self) -> int:
        return await self.run(lambda: len(self._legs))

    async def inbound_legs(self) -> int:
        return await self.run(lambda: sum(1 for leg in self._legs.values() if leg.inbound))

    def _post(self, event: UaEvent) -> None:
        """From any pjsip thread: hand an event to asyncio."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.events.put_nowait, event)

    # --- the pjsip thread -----------------------------------------------------------------------

    def _main(self, started: concurrent.futures.Future[None]) -> None:
        try:
            self._pj_start()
        except Exception as exc:
            started.set_exception(SipError(_describe(exc)))
            return
        started.set_result(None)
        ep = self._ep
        try:
            while not self._stopping:
                handled = 0
                for _ in range(MAX_POLLS):
                    events = ep.libHandleEvents(0)
                    if events <= 0:
                        break
                    handled += events
                self._dead.clear()
                handled += self._pj_run_commands()
                if not handled:
                    time.sleep(IDLE_SLEEP)
        finally:
            self._pj_shutdown()

    def _pj_run_commands(self) -> int:
        ran = 0
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except pj.Error as exc:
                future.set_exception(SipError(exc.info()))
            except Exception as exc:
                future.set_exception(exc)

    def _pj_start(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = MAX_LEGS
        cfg.uaConfig.userAgent = "hub-voice"
        # pjsip writes its own log file: a Python log writer would be called from pjmedia's
        # threads, which the pinned wheel does not hand the GIL
        cfg.logConfig.level = self.log_level if self.log_file else 0
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.filename = self.log_file
        # RTP on the SIP sockets' ioqueue, no media worker thread: RTP (and with it the DTMF
        # callback) is polled on this thread, which holds the GIL
        cfg.medConfig.hasIoqueue = False
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.maxMediaPorts = MAX_LEGS * 3 + 16
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for codec, priority in (("PCMU/8000", 255), ("PCMA/8000", 254), ("G722/16000", 0)):
            with contextlib.suppress(pj.Error):
                ep.codecSetPriority(codec, priority)
        ep.libStart()
        self._ep = ep

    def _pj_shutdown(self) -> None:
        ep = self._ep
        if ep is None:
            return
        try:
            ep.hangupAllCalls()
            for _ in range(20):
                ep.libHandleEvents(10)
        except pj.Error:
            pass
        self._ports.clear()
        self._legs.clear()
        self._dead.clear()
        for accounts in self._accounts.values():
            for acc in accounts:
                acc.shutdown()
        self._accounts.clear()
        ep.libDestroy()
        self._ep = None

    def _pj_add_line(self, line: Line) -> None:
        # an inbox's accounts share its one transport (its address and port)
        transports = self._transports.setdefault(line.inbox_id, [])
        if transports:
            tid = transports[0]
        else:
            tcfg = pj.TransportConfig()
            tcfg.boundAddress = line.host
            tcfg.port = line.port
            tid = self._ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
            transports.append(tid)
        if line.port == 0:
            bound = self._ep.transportGetInfo(tid).localName
            line = dataclasses.replace(line, port=int(bound.rsplit(":", 1)[1]))
        acfg = pj.AccountConfig()
        acfg.idUri = line.uri
        acfg.sipConfig.transportId = tid
        acfg.mediaConfig.transportConfig.boundAddress = line.host
        if self.rtp_port:
            acfg.mediaConfig.transportConfig.port = self.rtp_port
        if line.registrar:
            acfg.regConfig.registrarUri = line.registrar
            acfg.regConfig.timeoutSec = line.expires_s
            acfg.regConfig.retryIntervalSec = line.retry_s
            acfg.regConfig.firstRetryIntervalSec = min(5, line.retry_s)
            acfg.regConfig.randomRetryIntervalSec = max(1, line.retry_s // 5)
            acfg.regConfig.delayBeforeRefreshSec = max(1, min(30, line.expires_s // 4))
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", line.auth_user or line.user, 0, line.password)
            )
        else:
            acfg.regConfig.registerOnAdd = False
        acc = _Account(self, line)
        acc.create(acfg)
        self._accounts.setdefault(line.inbox_id, []).append(acc)

    def _pj_remove_lines(self, inbox_id: str) -> None:
        for leg in [leg for leg in self._legs.values() if leg.line.inbox_id == inbox_id]:
            self._pj_hangup(leg.leg_id, 503)
        for acc in self._accounts.pop(inbox_id, []):
            acc.shutdown()
        for tid in self._transports.pop(inbox_id, []):
            with contextlib.suppress(pj.Error):
                self._ep.transportClose(tid)

    def _pj_incoming(self, acc: _Account, prm: Any) -> None:
        try:
            self._pj_take(acc, prm)
        except Exception as exc:  # pjsua would answer 603: say why instead
            log.error("incoming call not taken", extra={"error": _describe(exc)})

    def _pj_take(self, acc: _Account, prm: Any) -> None:
        line = self._line_for(acc, str(prm.rdata.wholeMsg))
        owner = self._accounts[line.inbox_id][0] if line is not acc.line else acc
        leg_id = f"L{next(self._ids)}"
        leg = _Leg(self, owner, leg_id, prm.callId)
        op = pj.CallOpParam()
        leg.inbound = True
        self._legs[leg_id] = leg
        info = leg.getInfo()
        op.statusCode = 180
        leg.answer(op)
        self._post(Incoming(leg_id, line.inbox_id, info.callIdString, info.remoteUri))

    def _line_for(self, acc: _Account, message: str) -> Line:
        """The line an INVITE came in on: pjsua picks an account by the request URI's user and
        host, so two local lines on one address are told apart by the port it names."""
        match = _REQUEST_PORT.match(message)
        if match and not acc.line.registrar and int(match.group(1)) != acc.line.port:
            port = int(match.group(1))
            for accounts in self._accounts.values():
                for other in accounts:
                    if not other.line.registrar and other.line.port == port:
                        return other.line
        return acc.line

    def _pj_forget(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is not None:
            self._dead.append(leg)

    def _leg(self, leg_id: str) -> _Leg:
        leg = self._legs.get(leg_id)
        if leg is None:
            raise SipError(f"no call {leg_id}")
        return leg

    def _pj_answer(self, leg_id: str, status: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = status
        self._leg(leg_id).answer(op)

    def _pj_hangup(self, leg_id: str, status: int) -> None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.ended:
            return
        op = pj.CallOpParam()
        if status:
            op.statusCode = status
        leg.hangup(op)

    def _pj_dial(self, inbox_id: str, uri: str, leg_id: str) -> None:
        accounts = self._accounts.get(inbox_id)
        if not accounts:
            raise SipError(f"inbox {inbox_id} has no SIP line")
        if len(self._legs) >= MAX_LEGS:
            raise SipError("the voice process is at its call limit")
        leg = _Leg(self, accounts[0], leg_id, pj.PJSUA_INVALID_ID)
        self._legs[leg_id] = leg
        try:
            leg.makeCall(uri, pj.CallOpParam(True))
        except pj.Error:
            self._legs.pop(leg_id, None)
            self._dead.append(leg)
            raise

    def _pj_bridge(self, a: str, b: str) -> None:
        one, two = self._leg(a), self._leg(b)

        def join() -> None:
            if one.audio is not None and two.audio is not None:
                one.audio.startTransmit(two.audio)
                two.audio.startTransmit(one.audio)

        one.when_audio(join)
        two.when_audio(join)

    def _pj_record(self, legs: tuple[str, ...], path: str) -> str:
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        handle = f"R{next(self._ids)}"
        self._ports[handle] = recorder
        for leg_id in legs:
            self._leg(leg_id).when_audio(_feed(self._leg(leg_id), recorder))
        return handle

    def _pj_play(self, leg_id: str, path: str) -> str:
        leg = self._leg(leg_id)
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        handle = f"P{next(self._ids)}"
        self._ports[handle] = player
        leg.when_audio(lambda: player.startTransmit(leg.audio))
        return handle

    def _pj_release(self, handle: str) -> None:
        port = self._ports.pop(handle, None)
        if port is None:
            return
        for leg in self._legs.values():
            if leg.audio is not None:
                try:
                    leg.audio.stopTransmit(port)
                    port.stopTransmit(leg.audio)
                except pj.Error:
                    pass
        del port  # the recorder's destructor writes the WAV header and closes the file

    def _pj_refer(self, leg_id: str, uri: str) -> None:
        self._leg(leg_id).xfer(uri, pj.CallOpParam(True))


def _feed(leg: _Leg, sink: Any) -> Callable[[], None]:
    def start() -> None:
        leg.audio.startTransmit(sink)

    return start


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return str(exc.info())
    return repr(exc)
