"""Who may do what: roles, permissions and the one authorization check.

REST routes and the Socket.IO layer both call :func:`authorize`. A caller is a
:class:`Principal`: an account, a role, the inboxes it may see and, for personal API tokens, the
scopes that narrow its role. Nobody ever acts outside ``account_id``.

Refusals follow one rule: lacking a *permission* is 403 (the caller knows the route exists), but a
record in an inbox the caller may not see is 404, exactly as if it did not exist, so ids cannot be
probed.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class Permission(StrEnum):
    """Also the scopes a personal API token may be narrowed to."""

    PROFILE = "profile"  # one's own profile, availability, MFA and API tokens
    ACCOUNT_READ = "account:read"  # labels, canned responses, teams, users, inboxes one sees
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WRITE = "conversations:write"  # status, assignee, labels, replies, notes
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    CONTACTS_DELETE = "contacts:delete"
    LABELS_MANAGE = "labels:manage"
    CANNED_MANAGE = "canned_responses:manage"
    TEAMS_MANAGE = "teams:manage"
    USERS_MANAGE = "users:manage"
    INBOXES_MANAGE = "inboxes:manage"
    ACCOUNT_MANAGE = "account:manage"
    AUDIT_READ = "audit:read"
    #: create and list accounts: platform operators' tokens only, never an account's users
    PLATFORM_MANAGE = "platform:manage"


_AGENT = frozenset(
    {
        Permission.PROFILE,
        Permission.ACCOUNT_READ,
        Permission.CONVERSATIONS_READ,
        Permission.CONVERSATIONS_WRITE,
        Permission.CONTACTS_READ,
        Permission.CONTACTS_WRITE,
    }
)
_SUPERVISOR = _AGENT | {Permission.LABELS_MANAGE, Permission.CANNED_MANAGE}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMINISTRATOR: frozenset(p for p in Permission if p is not Permission.PLATFORM_MANAGE),
}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling, over REST or a socket.

    ``inboxes``: the inboxes this caller may see; ``None`` means every inbox of the account
    (administrators). ``scopes``: a personal API token's narrowing of the role; ``None`` means the
    role's full grant.
    """

    account_id: str
    role: Role
    user_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None
    inboxes: frozenset[str] | None = None
    scopes: frozenset[str] | None = None
    #: a platform operator's token: may manage accounts, and nothing inside any account
    platform: bool = False

    def can(self, permission: Permission) -> bool:
        if self.platform:
            return permission is Permission.PLATFORM_MANAGE
        if permission not in GRANTS[self.role]:
            return False
        return self.scopes is None or permission.value in self.scopes

    def sees(self, inbox_id: str | None) -> bool:
        """Whether a record or event of this inbox is for this caller (``None``: no inbox)."""
        return self.inboxes is None or inbox_id is None or inbox_id in self.inboxes

    @property
    def agent_id(self) -> str:
        """Who this is for assignment, presence, typing and read positions."""
        return self.user_id or self.token_id or "system"


class Denied(Exception):
    """403 (missing permission) or 404 (a record the caller may not see)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def authorize(principal: Principal, permission: Permission, inbox_id: str | None = None) -> None:
    """Raise :class:`Denied` unless ``principal`` holds ``permission`` (on the inbox's records)."""
    if not principal.can(permission):
        raise Denied(403, "forbidden", f"this needs the {permission.value} permission")
    if not principal.sees(inbox_id):
        raise Denied(404, "not_found", "no such record")


def role_of(value: str) -> Role:
    return Role(value)
