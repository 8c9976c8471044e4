"""A voice inbox's settings, checked when an administrator saves them.

Two ways to reach the hub: ``register`` (the hub registers one or more extensions or a trunk at
a PBX with digest authentication, and the PBX sends their calls to it) and ``listen`` (the PBX
sends INVITEs to an address the hub listens on; no registration). Passwords are inbox secrets
(encrypted at rest): ``password`` for every account, or ``password_<username>`` for one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import phonenumbers

_SIP_URI = re.compile(r"sips?:[A-Za-z0-9._~%!$&'()*+,;=:@\[\]-]+")
_USER = re.compile(r"[A-Za-z0-9._~+-]{1,64}")
_DIGIT = re.compile(r"[0-9*#]")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:\d{1,5})?")


class SipAccount(msgspec.Struct, frozen=True):
    """An extension (or trunk user) the hub registers as, from ``accounts``."""

    username: str
    #: the digest user when it differs from the extension (3CX's "authentication ID")
    auth_username: str = ""


def _account(entry: str) -> SipAccount:
    username, _, auth = entry.partition(":")
    if not _USER.fullmatch(username) or (auth and not _USER.fullmatch(auth)):
        raise ValueError(
            "accounts are extensions such as 101, or 101:authid when the authentication ID "
            "differs (1-64 letters, digits or ._~+-)"
        )
    return SipAccount(username, auth)


class SipSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: Literal["register", "listen"] = "listen"
    #: the address the hub's SIP and RTP sockets bind (listen mode: where the PBX sends INVITEs)
    bind: str = "127.0.0.1"
    #: listen mode: the SIP port; register mode: 0 lets the system pick
    port: int = 5060
    #: the local user part of this inbox's address in listen mode (sip:<user>@bind:port)
    user: str = "hub"
    #: register mode: the PBX or trunk registrar (sip:pbx.example.com:5060)
    registrar: str = ""
    #: register mode: the extensions to register, ``101`` or ``101:authid``
    accounts: tuple[str, ...] = ()
    #: the SIP domain of the accounts' address of record; the registrar's host by default
    domain: str = ""
    #: listen mode: where calls the hub places go (host or host:port of the PBX)
    pbx: str = ""
    #: re-register this often (seconds); pjsua re-registers before the expiry
    expires_s: int = 300
    #: after a failed registration, try again after this many seconds (with jitter)
    retry_s: int = 30
    #: callers' numbers without a country code are read in this region (ISO 3166 code)
    default_region: str = "LK"
    #: who is offered a call first: the agent offered one longest ago, or idle longest
    strategy: Literal["round_robin", "longest_idle"] = "round_robin"
    #: how long an agent's console (then their phone) rings before the next agent
    ring_seconds: int = 20
    #: how a taken call reaches the agent's phone: a second leg bridged in the hub (works with
    #: every PBX and allows recording) or a SIP REFER to the PBX (the hub leaves the call)
    connect: Literal["bridge", "refer"] = "bridge"
    record: bool = False
    voicemail: bool = True
    #: a WAV in the media store played before the beep; a short tone when absent
    voicemail_greeting: str = ""
    voicemail_max_seconds: int = 120
    #: simple IVR: ``digit=team id`` entries; the menu greeting (media key) plays on answer
    ivr: tuple[str, ...] = ()
    ivr_greeting: str = ""
    ivr_wait_seconds: int = 8
    #: calls this inbox takes at once; more get 486 Busy Here
    max_calls: int = 50

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            raise ValueError("bind is an IP address such as 127.0.0.1 or 0.0.0.0") from None
        if not 0 <= self.port <= 65535 or (self.mode == "listen" and self.port == 0):
            raise ValueError("port is 1-65535 (0 only in register mode)")
        if not _USER.fullmatch(self.user):
            raise ValueError("user is 1-64 letters, digits or ._~+-")
        if self.pbx and not _HOST.fullmatch(self.pbx):
            raise ValueError("pbx is a host or host:port such as 10.0.0.5:5060")
        if self.mode == "register" and (not self.accounts or not self.registrar):
            raise ValueError("register mode needs a registrar and at least one account")
        if self.registrar and not _SIP_URI.fullmatch(self.registrar):
            raise ValueError("registrar is a SIP URI such as sip:pbx.example.com:5060")
        if self.domain and not _HOST.fullmatch(self.domain):
            raise ValueError("domain is a host name such as pbx.example.com")
        for entry in self.accounts:
            _account(entry)
        if not 10 <= self.expires_s <= 86_400:
            raise ValueError("expires_s is 10-86400 seconds")
        if not 1 <= self.retry_s <= 3600:
            raise ValueError("retry_s is 1-3600 seconds")
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("default_region is a two-letter region code such as LK or IN")
        if not 3 <= self.ring_seconds <= 300:
            raise ValueError("ring_seconds is 3-300")
        if not 5 <= self.voicemail_max_seconds <= 600:
            raise ValueError("voicemail_max_seconds is 5-600")
        if not 1 <= self.ivr_wait_seconds <= 60:
            raise ValueError("ivr_wait_seconds is 1-60")
        if not 1 <= self.max_calls <= 1000:
            raise ValueError("max_calls is 1-1000")
        for entry in self.ivr:
            digit, _, team = entry.partition("=")
            if not _DIGIT.fullmatch(digit) or not team:
                raise ValueError("ivr entries are digit=team_id, the digit 0-9, * or #")

    def sip_accounts(self) -> list[SipAccount]:
        return [_account(entry) for entry in self.accounts]

    def ivr_menu(self) -> dict[str, str]:
        return dict(entry.partition("=")[::2] for entry in self.ivr)

    @property
    def registrar_host(self) -> str:
        return self.registrar.split(":", 1)[-1].split(";", 1)[0] if self.registrar else ""


def parse_settings(settings: Mapping[str, Any]) -> SipSettings:
    """``ValueError`` (msgspec.ValidationError is one) saying what is wrong."""
    return msgspec.convert(dict(settings), SipSettings)


def password_key(username: str) -> str:
    """The credential that holds one account's password: ``password_<username>`` with the
    username lowercased and anything but letters, digits and ``_`` as ``_``."""
    return "password_" + re.sub(r"[^a-z0-9_]", "_", username.lower())


def account_password(secrets: Mapping[str, Any], username: str) -> str:
    value = secrets.get(password_key(username)) or secrets.get("password") or ""
    return str(value)
