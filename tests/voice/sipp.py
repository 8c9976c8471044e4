"""sipp (Debian's ``sip-tester``) as the far end of the voice tests: callers, agents' phones and a
registrar, on loopback only. Scenarios are written per test from the templates below."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

PCAP_DIR = Path("/usr/share/sip-tester")
AUDIO_PCAP = PCAP_DIR / "g711a.pcap"

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
"""

_INVITE = """
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{display}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:{caller}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-11,16

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" timeout="{answer_ms}"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{display}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:{caller}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_BYE = """
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{display}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:{caller}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""

_WAIT_BYE = """
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


#: answering an INVITE with 200 OK and PCMU (an agent's phone, a customer's phone)
_ANSWER = """
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
"""


def caller(
    *,
    number: str,
    display: str = "Caller",
    talk_ms: int = 2000,
    before_audio_ms: int | None = None,
    dtmf: str | None = None,
    answer_ms: int = 30000,
    hangs_up: bool = True,
) -> str:
    """A caller: INVITE, wait for the answer, then (optionally) play the g711a recording after
    ``before_audio_ms`` and a DTMF digit, stay ``talk_ms`` in all, and hang up (or wait for the
    hub's BYE)."""
    parts = [_HEAD.format(name="caller"), _INVITE]
    spent = 0
    if before_audio_ms is not None:
        parts.append(f'  <pause milliseconds="{before_audio_ms}"/>\n')
        parts.append(f'  <nop><action><exec play_pcap_audio="{AUDIO_PCAP}"/></action></nop>\n')
        spent = before_audio_ms
    if dtmf is not None:
        # after the recording, or (without one) once the answer's media is surely up
        audio_ms = round(pcap_span(AUDIO_PCAP) * 1000) + 200 if before_audio_ms is not None else 800
        parts.append(f'  <pause milliseconds="{audio_ms}"/>\n')
        digit = PCAP_DIR / f"dtmf_2833_{dtmf}.pcap"
        parts.append(f'  <nop><action><exec play_pcap_audio="{digit}"/></action></nop>\n')
        spent += audio_ms
    parts.append(f'  <pause milliseconds="{max(0, talk_ms - spent)}"/>\n')
    parts.append(_BYE if hangs_up else _WAIT_BYE)
    text = "".join(parts)
    return (
        text.replace("{display}", display)
        .replace("{caller}", number)
        .replace("{answer_ms}", str(answer_ms))
    )


def flood_caller(*, number: str, talk_ms: int) -> str:
    """A caller that takes "busy" (486) for an answer: logs ``answered`` or ``busy`` per call
    (``-trace_logs``), so a flood can be counted."""
    invite = _INVITE.replace(
        '  <recv response="200" rtd="true" timeout="{answer_ms}"/>',
        '  <recv response="486" optional="true" next="busy"/>\n'
        '  <recv response="503" optional="true" next="busy"/>\n'
        '  <recv response="200" rtd="true" timeout="{answer_ms}"/>',
    )
    busy_ack = _BYE.split("<![CDATA[")[1].split("]]>")[0]
    busy_ack = (
        busy_ack.replace("BYE sip:", "ACK sip:")
        .replace("CSeq: 2 BYE", "CSeq: 1 ACK")
        .replace(";branch=[branch]", ";branch=[branch-1]")
    )
    text = (
        _HEAD.format(name="flood")
        + invite
        + '  <nop><action><log message="answered"/></action></nop>\n'
        + f'  <pause milliseconds="{talk_ms}"/>\n'
        + _BYE.replace("</scenario>\n", "")
        + '  <nop next="end"/>\n'
        + '  <label id="busy"/>\n'
        + f"  <send><![CDATA[{busy_ack}]]></send>\n"
        + '  <nop><action><log message="busy"/></action></nop>\n'
        + '  <label id="end"/>\n'
        + "</scenario>\n"
    )
    return (
        text.replace("{display}", "Flood")
        .replace("{caller}", number)
        .replace("{answer_ms}", "20000")
    )


def phone(*, answer: bool = True, ring_ms: int = 200) -> str:
    """An agent's phone: rings, then answers (or refuses with 486) and waits for the BYE."""
    final = (
        _ANSWER
        + """  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""
        if answer
        else """
  <send>
    <![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""
    )
    return (
        _HEAD.format(name="phone")
        + f"""
  <recv request="INVITE"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{ring_ms}"/>
"""
        + final
    )


def callee(*, talk_ms: int) -> str:
    """A called party (a customer's phone): answers, talks, then hangs up."""
    reply = """
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]"""
    return (
        _HEAD.format(name="callee")
        + f"""
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing{reply}
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
{_ANSWER}  <recv request="ACK"/>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:customer@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To:[$caller]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""
    )


def registrar(*, user: str, password: str, expires: int) -> str:
    """A registrar with digest authentication: 401 with a challenge, then 200 (or 403) for the
    answer; every REGISTER transaction pair is one sipp "call"."""
    reply = """
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]"""
    return (
        _HEAD.format(name="registrar")
        + f"""
  <recv request="REGISTER"/>
  <send>
    <![CDATA[

      SIP/2.0 401 Unauthorized{reply}
      WWW-Authenticate: Digest realm="hub.test", nonce="n[pid]x[call_number]", algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="{user}" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="done">
    <![CDATA[

      SIP/2.0 403 Forbidden{reply}
      Content-Length: 0

    ]]>
  </send>
  <label id="good"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK{reply}
      [last_Contact:];expires={expires}
      Expires: {expires}
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
"""
    )


def _packets(path: Path) -> list[tuple[float, bytes]]:
    """(seconds from the first packet, RTP payload) of each packet of a pcap of RTP over
    Ethernet/IPv4/UDP (sipp's pcaps: 54 bytes of headers before the payload)."""
    data = path.read_bytes()
    offset, packets = 24, list[tuple[float, bytes]]()
    while offset + 16 <= len(data):
        seconds, micros, included, _ = struct.unpack("<IIII", data[offset : offset + 16])
        packets.append((seconds + micros / 1e6, data[offset + 16 + 54 : offset + 16 + included]))
        offset += 16 + included
    return [(stamp - packets[0][0], payload) for stamp, payload in packets]


def pcap_span(path: Path) -> float:
    """Seconds from the first to the end of the last RTP packet of a pcap (20 ms packets)."""
    return _packets(path)[-1][0] + 0.02


def _alaw(byte: int) -> int:
    """One G.711 A-law sample as 16-bit linear (ITU-T G.711)."""
    byte ^= 0x55
    exponent, mantissa = (byte >> 4) & 0x07, byte & 0x0F
    value = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return value if byte & 0x80 else -value


def pcap_voiced_span(path: Path, threshold: int = 500) -> float:
    """Seconds from the first to the last sample louder than ``threshold`` in a pcap of G.711
    A-law RTP (sipp's g711a.pcap): what a recording of it must hold."""
    loud = [
        stamp + i / 8000
        for stamp, payload in _packets(path)
        for i, byte in enumerate(payload)
        if abs(_alaw(byte)) > threshold
    ]
    return loud[-1] - loud[0] if loud else 0.0


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise RuntimeError(
            "sipp is not installed (apt-get install sip-tester; ./scripts/test does)"
        )
    return found


@contextlib.asynccontextmanager
async def sipp(
    scenario: str, workdir: Path, *args: str, name: str = "sipp"
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run sipp on loopback with a scenario; killed at the end if still running."""
    path = workdir / f"{name}.xml"
    path.write_text(scenario)
    process = await asyncio.create_subprocess_exec(
        sipp_binary(),
        "-sf",
        str(path),
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / f"{name}-errors.log"),
        *args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=workdir,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def finished(process: asyncio.subprocess.Process, within: float) -> int:
    async with asyncio.timeout(within):
        return int(await process.wait())
