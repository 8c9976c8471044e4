"""What a web chat visitor changes besides writing: the email the pre-chat form gives (an email
identity on the visitor's contact, so the same person writing by mail is the same contact) and the
rating of a resolved conversation (the CSAT, event ``conversation.rated``)."""

from __future__ import annotations

from hub.events import Actor, ActorKind, ContactUpdated, ConversationRated, make_event
from hub.events.types import Identity
from hub.identities import EMAIL, normalise_email
from hub.store.db import Conn
from hub.store.outbox import append_events


class RatingRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def add_contact_email(
    conn: Conn, *, account_id: str, contact_id: str, email: str, correlation_id: str | None = None
) -> bool:
    """Give the contact this email identity unless another contact holds it already (then the
    visitor stays its own contact: an email typed into a form proves nothing). Whether it was
    added."""
    address = normalise_email(email)
    if address is None:
        return False
    added = await conn.fetchval(
        """INSERT INTO contact_identities (account_id, channel, address, contact_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING contact_id""",
        account_id,
        EMAIL,
        address,
        contact_id,
    )
    if added is None:
        return False
    row = await conn.fetchrow("SELECT name FROM contacts WHERE id = $1", contact_id)
    identities = await conn.fetch(
        """SELECT channel, address FROM contact_identities WHERE contact_id = $1
            ORDER BY channel, address""",
        contact_id,
    )

    event = make_event(
        ContactUpdated(
            contact_id=contact_id,
            name=row["name"] if row else None,
            changed=("identities",),
            identities=tuple(Identity(r["channel"], r["address"]) for r in identities),
        ),
        account_id=account_id,
        conversation_id=None,
        actor=Actor(ActorKind.CONTACT, contact_id),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
    return True


async def rate_conversation(
    conn: Conn,
    *,
    account_id: str,
    contact_id: str,
    conversation_id: str,
    rating: int,
    comment: str | None = None,
    correlation_id: str | None = None,
) -> None:
    """The contact's rating of its resolved conversation, once; ``RatingRefused`` otherwise."""
    if not 1 <= rating <= 5:
        raise RatingRefused("invalid_rating", "a rating is 1 to 5")
    row = await conn.fetchrow(
        """SELECT inbox_id, status FROM conversations
            WHERE id = $1 AND account_id = $2 AND contact_id = $3 FOR UPDATE""",
        conversation_id,
        account_id,
        contact_id,
    )
    if row is None:
        raise RatingRefused("not_found", "no such conversation")
    if row["status"] != "resolved":
        raise RatingRefused("not_resolved", "a conversation is rated once it is resolved")
    inserted = await conn.fetchval(
        """INSERT INTO conversation_ratings
                  (conversation_id, account_id, inbox_id, contact_id, rating, comment)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING conversation_id""",
        conversation_id,
        account_id,
        row["inbox_id"],
        contact_id,
        rating,
        comment,
    )
    if inserted is None:
        raise RatingRefused("already_rated", "this conversation has been rated")
    event = make_event(
        ConversationRated(
            inbox_id=row["inbox_id"],
            contact_id=contact_id,
            rating=rating,
            comment=comment,
        ),
        account_id=account_id,
        conversation_id=conversation_id,
        actor=Actor(ActorKind.CONTACT, contact_id),
        correlation_id=correlation_id,
    )
    await append_events(conn, [event])
