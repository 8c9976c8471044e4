"""What the route modules share: field types PostgreSQL can store (text never holds NUL), list
paging, path ids, and running an action in one transaction with its refusals turned into API
errors (404 / 409 / 422).

The constraints live in the types so that the OpenAPI document states them too.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Concatenate, Literal, ParamSpec, TypeVar

import msgspec

from gateway.responses import ApiError
from gateway.route import Call
from hub.actions.accounts import Refused
from hub.fields import NO_NUL
from hub.refusals import CodedRefusal
from hub.store.db import Conn, in_transaction

# ASCII whitespace only: Python's and ECMA's \s disagree on other characters
SPACE = "\t\n\v\f\r "
NOT_BLANK = r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$"


def whole(body: str) -> str:
    """A pattern for the whole string that means the same to Python (msgspec) and to ECMA regexes
    (OpenAPI clients): in Python ``$`` also matches before a final newline."""
    return rf"^(?:{body})(?![\s\S])"


def tidy(text: str) -> str:
    """Without surrounding (ASCII) whitespace: what :data:`NOT_BLANK` does not count."""
    return text.strip(SPACE)


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NOT_BLANK)]
Description = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Ids = Annotated[list[Id], msgspec.Meta(max_length=1000)]
Search = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Cursor = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=NO_NUL)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=200)]
RoleName = Literal["administrator", "supervisor", "agent"]
# conversations and contacts take shorter searches and only record-shaped ids (ULIDs, or names a
# CLI gave); anything else cannot name a record
PrefixSearch = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
#: an agent's phone: a SIP URI such as sip:101@pbx.example.com ("" clears it)
SipUri = Annotated[str, msgspec.Meta(max_length=256, pattern=r"^(sips?:[^\s<>\"\x00]{1,250})?$")]
_RECORD_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


class ListQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Paging every admin list takes: up to ``limit`` items after ``cursor`` (the
    ``next_cursor`` of the previous page; any other string is simply a position in the list)."""

    limit: Limit = 50
    cursor: Cursor | None = None


_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}
_CODE_STATUS = {"not_found": 404, "conflict": 409, "not_offered": 409, "on_a_call": 409}
P = ParamSpec("P")
R = TypeVar("R")


def path_id(call: Call, name: str, what: str) -> str:
    """An id from the path; one that cannot be an id is simply not found."""
    value = call.path(name)
    if "\x00" in value or len(value) > 64:
        raise not_found(what)
    return value


def record_id(call: Call, name: str) -> str:
    """A record-shaped path id, or 404 when it cannot be one (never a database error for a stray
    byte)."""
    value = call.path(name)
    if _RECORD_ID.fullmatch(value) is None:
        raise ApiError(404, "not_found", "no such record")
    return value


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


async def run(
    call: Call,
    action: Callable[Concatenate[Conn, P], Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """``action`` in a transaction of its own; a :class:`Refused` becomes the API error."""
    try:
        return await in_transaction(call.hub.pool, action, *args, **kwargs)
    except Refused as exc:
        raise ApiError(_STATUS[exc.kind], exc.code, exc.message, exc.details) from exc


async def committed(
    call: Call,
    action: Callable[Concatenate[Conn, P], Awaitable[R | ApiError]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """``action`` in a transaction that commits even when it answers an error, so that the
    failures it audited and counted stay; the error is raised after."""
    result = await in_transaction(call.hub.pool, action, *args, **kwargs)
    if isinstance(result, ApiError):
        raise result
    return result


def refusal(exc: CodedRefusal) -> ApiError:
    """The API error of an action's refusal, by its ``code``: ``not_found`` 404, ``conflict``
    409, any other 422."""
    return ApiError(_CODE_STATUS.get(exc.code, 422), exc.code, exc.message, exc.details)
