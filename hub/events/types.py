"""Every event type of the hub, with its topic and schema version.

Conversation events (messages, conversation changes; later calls) go to the ``conversations`` topic
keyed by conversation id, so their order per conversation is kept end to end. Contact events go to
``contacts`` keyed by contact id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from hub.events.envelope import Payload, payload_type

CONVERSATIONS = "conversations"
CONTACTS = "contacts"
#: the raw provider webhooks inbound messages arrived in, for the archive alone: kept off the
#: conversation stream that agents' sockets, outgoing webhooks and the event log read
WEBHOOKS = "webhooks"


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """A file as a message shows it; ``url`` is empty for a file the provider announced but the
    hub could not keep, and ``unavailable`` says why (:data:`TOO_LARGE`, :data:`NOT_RECEIVED`)."""

    url: str
    content_type: str | None = None
    filename: str | None = None
    size: int | None = None
    unavailable: str | None = None


#: ``Attachment.unavailable``: the file is larger than the provider lets the hub download, or
#: than the media store keeps
TOO_LARGE = "too_large"
#: ``Attachment.unavailable``: the provider no longer has the file, or refused it for good
NOT_RECEIVED = "not_received"


class ProviderPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The provider's webhook as it arrived (its body as text, decoded as UTF-8 with bad bytes
    replaced), for the archive (``crm/archive``). A body over ``PROVIDER_PAYLOAD_MAX`` bytes
    travels as its size and digest only (``body`` null)."""

    content_type: str
    body: str | None
    size: int
    sha256: str


#: the largest webhook body an event carries whole (bytes)
PROVIDER_PAYLOAD_MAX = 256 * 1024


@payload_type("message.webhook", topic=WEBHOOKS)
class MessageWebhook(Payload, frozen=True, kw_only=True):
    """The provider's webhook an inbound message arrived in, written with its
    ``message.received`` (one webhook may carry several messages: each gets its own)."""

    message_id: str
    inbox_id: str
    contact_id: str
    channel: str
    provider_message_id: str
    #: null once erased (``hub_erase_event`` blanks it in copies not yet relayed)
    provider_payload: ProviderPayload | None


@payload_type("message.received", topic=CONVERSATIONS)
class MessageReceived(Payload, frozen=True, kw_only=True):
    """A contact's message arrived through a channel and is stored."""

    message_id: str
    inbox_id: str
    contact_id: str
    channel: str
    provider_message_id: str
    content: str | None
    content_type: str = "text"
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None


@payload_type("message.created", topic=CONVERSATIONS)
class MessageCreated(Payload, frozen=True, kw_only=True):
    """An agent (or integration) wrote a reply or a private note; replies start out queued."""

    message_id: str
    inbox_id: str
    sender_id: str | None
    content: str | None
    private: bool = False
    content_type: str = "text"
    attachments: tuple[Attachment, ...] = ()
    status: MessageStatus = MessageStatus.QUEUED


@payload_type("message.edited", topic=CONVERSATIONS)
class MessageEdited(Payload, frozen=True, kw_only=True):
    """The contact changed a message they sent: ``content`` replaces ``previous_content`` on
    the stored message, which is marked edited at ``edited_at`` (earlier texts in its
    ``edits``)."""

    message_id: str
    inbox_id: str
    content: str | None
    previous_content: str | None
    edited_at: datetime


class IntentGuess(msgspec.Struct, frozen=True):
    label: str
    confidence: float


class ReplySuggestion(msgspec.Struct, frozen=True, kw_only=True):
    #: ``canned:<id>`` or ``reply:<message id>`` (what the agent reports back when using it)
    ref: str
    text: str
    source: str
    score: float


@payload_type("message.analysed", topic=CONVERSATIONS)
class MessageAnalysed(Payload, frozen=True, kw_only=True):
    """The AI part's findings on a message: its language, a customer message's sentiment and the
    conversation's trend, intent labels above the account's threshold and the top reply
    suggestions for the agent. Rules may apply the intents; the console shows the rest."""

    message_id: str
    inbox_id: str
    language: str | None = None
    sentiment: float | None = None
    sentiment_trend: float | None = None
    intents: tuple[IntentGuess, ...] = ()
    suggestions: tuple[ReplySuggestion, ...] = ()


@payload_type("message.status_changed", topic=CONVERSATIONS)
class MessageStatusChanged(Payload, frozen=True, kw_only=True):
    message_id: str
    inbox_id: str
    status: MessageStatus
    previous_status: MessageStatus | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ConversationState(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a conversation that agents and rules act on."""

    status: ConversationStatus
    assignee_id: str | None = None
    team_id: str | None = None
    labels: tuple[str, ...] = ()
    priority: Priority | None = None
    snoozed_until: datetime | None = None
    #: muted by a rule or an agent: the hub keeps the flag; notifying parts may stay quiet
    muted: bool = False


class ConversationPatch(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Previous values of the fields an update changed; unchanged fields are absent."""

    status: ConversationStatus | msgspec.UnsetType = msgspec.UNSET
    assignee_id: str | msgspec.UnsetType | None = msgspec.UNSET
    team_id: str | msgspec.UnsetType | None = msgspec.UNSET
    labels: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType | None = msgspec.UNSET
    snoozed_until: datetime | msgspec.UnsetType | None = msgspec.UNSET
    muted: bool | msgspec.UnsetType = msgspec.UNSET


@payload_type("conversation.created", topic=CONVERSATIONS)
class ConversationCreated(Payload, frozen=True, kw_only=True):
    inbox_id: str
    contact_id: str
    state: ConversationState


@payload_type("conversation.updated", topic=CONVERSATIONS)
class ConversationUpdated(Payload, frozen=True, kw_only=True):
    """``state`` is the conversation after the change; ``previous`` holds only what changed."""

    inbox_id: str
    state: ConversationState
    previous: ConversationPatch
    reason: str | None = None


@payload_type("conversation.read", topic=CONVERSATIONS)
class ConversationRead(Payload, frozen=True, kw_only=True):
    """An agent has read the conversation up to a message (its other devices follow)."""

    inbox_id: str
    agent_id: str
    last_read_message_id: str


@payload_type("conversation.rated", topic=CONVERSATIONS)
class ConversationRated(Payload, frozen=True, kw_only=True):
    """The contact rated a resolved conversation (the web chat widget's CSAT), 1 to 5; one
    rating per conversation, kept in ``conversation_ratings``."""

    inbox_id: str
    contact_id: str
    rating: int
    comment: str | None = None


@payload_type("conversation.attributes_changed", topic=CONVERSATIONS)
class ConversationAttributesChanged(Payload, frozen=True, kw_only=True):
    """A channel learnt something about the conversation beyond its messages (a Telegram deep
    link's ``start_payload``); ``attributes`` is the whole set after the change, ``changed`` the
    keys it set."""

    inbox_id: str
    attributes: dict[str, str]
    changed: tuple[str, ...]


@payload_type("agent.presence_changed", topic=CONVERSATIONS)
class AgentPresenceChanged(Payload, frozen=True, kw_only=True):
    """An agent's effective presence changed (``online``, ``busy``, ``offline``; see
    :mod:`hub.contracts.presence`): the first socket, a status set, the last socket gone, or a
    vanished process's agents swept offline. Emitted once per change (``agent_presence`` holds
    the last status); ``previous`` is the status before it. On the conversations topic, keyed by
    the agent, so the journal, the replay log and the analytics part see it in order."""

    agent_id: str
    status: str
    previous: str

    def partition_key(self) -> str:
        return self.agent_id


class Identity(msgspec.Struct, frozen=True):
    channel: str
    address: str


@payload_type("contact.created", topic=CONTACTS)
class ContactCreated(Payload, frozen=True, kw_only=True):
    contact_id: str
    name: str | None
    identities: tuple[Identity, ...] = ()

    def partition_key(self) -> str:
        return self.contact_id


@payload_type("contact.updated", topic=CONTACTS)
class ContactUpdated(Payload, frozen=True, kw_only=True):
    contact_id: str
    name: str | None
    changed: tuple[str, ...]
    identities: tuple[Identity, ...] = ()

    def partition_key(self) -> str:
        return self.contact_id


@payload_type("contact.merged", topic=CONTACTS)
class ContactMerged(Payload, frozen=True, kw_only=True):
    """``merged_contact_id`` was folded into ``contact_id``; its conversations now point there."""

    contact_id: str
    merged_contact_id: str

    def partition_key(self) -> str:
        return self.contact_id


@payload_type("contact.erased", topic=CONTACTS)
class ContactErased(Payload, frozen=True, kw_only=True):
    """A person's data was erased (data-protection request): every consumer that keeps a copy of
    their content (analytics, AI indexes, archives) removes it. ``conversation_ids`` and
    ``message_ids`` name what was theirs so consumers need not look it up in the (now anonymised)
    database."""

    contact_id: str
    conversation_ids: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()

    def partition_key(self) -> str:
        return self.contact_id


# --- voice ---------------------------------------------------------------------------------------
# A call's progress, on its conversation's timeline. Every call event names the call; the voice
# process acts on ``call.accepted``, ``call.declined`` and ``call.requested`` (what agents decide),
# everything else reports what happened on the SIP side.


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@payload_type("call.ringing", topic=CONVERSATIONS)
class CallRinging(Payload, frozen=True, kw_only=True):
    """A call reached the hub (inbound) or the hub is dialling (outbound)."""

    call_id: str
    inbox_id: str
    direction: CallDirection
    number: str
    message_id: str | None = None


@payload_type("call.offered", topic=CONVERSATIONS)
class CallOffered(Payload, frozen=True, kw_only=True):
    """The call rings in this agent's console until ``expires_at``."""

    call_id: str
    inbox_id: str
    agent_id: str
    expires_at: datetime


@payload_type("call.accepted", topic=CONVERSATIONS)
class CallAccepted(Payload, frozen=True, kw_only=True):
    """The agent took the call in the console; the voice process now rings their phone."""

    call_id: str
    inbox_id: str
    agent_id: str


@payload_type("call.declined", topic=CONVERSATIONS)
class CallDeclined(Payload, frozen=True, kw_only=True):
    """``reason``: declined (the agent said no), no_answer (rang out), unreachable (their phone
    did not answer or has no SIP address)."""

    call_id: str
    inbox_id: str
    agent_id: str
    reason: str


@payload_type("call.requested", topic=CONVERSATIONS)
class CallRequested(Payload, frozen=True, kw_only=True):
    """Click-to-call: ring the agent's phone, then the number, and join them."""

    call_id: str
    inbox_id: str
    agent_id: str
    number: str


@payload_type("call.answered", topic=CONVERSATIONS)
class CallAnswered(Payload, frozen=True, kw_only=True):
    """``by``: agent (connected to ``agent_id``), voicemail, or ivr (the menu picked up)."""

    call_id: str
    inbox_id: str
    by: str
    agent_id: str | None = None


@payload_type("call.transferred", topic=CONVERSATIONS)
class CallTransferred(Payload, frozen=True, kw_only=True):
    """``method``: bridge (a second leg to ``target``, joined in the hub) or refer (SIP REFER)."""

    call_id: str
    inbox_id: str
    target: str
    method: str
    agent_id: str | None = None


@payload_type("call.dtmf", topic=CONVERSATIONS)
class CallDtmf(Payload, frozen=True, kw_only=True):
    call_id: str
    inbox_id: str
    digit: str


@payload_type("call.voicemail", topic=CONVERSATIONS)
class CallVoicemail(Payload, frozen=True, kw_only=True):
    """Nobody took the call: the greeting plays and the caller may leave a message."""

    call_id: str
    inbox_id: str
    reason: str


@payload_type("call.ended", topic=CONVERSATIONS)
class CallEnded(Payload, frozen=True, kw_only=True):
    """``duration_s`` runs from answer to hang-up (0 for a call nobody answered);
    ``hangup_cause`` is the SIP status and reason of the end (``200 Normal call clearing``,
    ``487 Request Terminated``)."""

    call_id: str
    inbox_id: str
    answered: bool
    duration_s: float
    hangup_cause: str
    ended_by: str


@payload_type("call.recording_ready", topic=CONVERSATIONS)
class CallRecordingReady(Payload, frozen=True, kw_only=True):
    """A WAV in the media store: the call (``kind`` call) or a voicemail. A transcriber can
    consume these later."""

    call_id: str
    inbox_id: str
    kind: str
    media_key: str
    url: str
    duration_s: float
    size: int


# --- service levels ------------------------------------------------------------------------------
# The automation part's SLA clocks (docs/automation.md): a conversation's first response, next
# response or resolution is about to be late (``sla.warning``) or is late (``sla.breached``).
# Each is emitted exactly once per conversation, policy, metric and cycle.


@payload_type("sla.warning", topic=CONVERSATIONS)
class SlaWarning(Payload, frozen=True, kw_only=True):
    """``metric``: first_response, next_response or resolution; ``due_at``: when it breaches."""

    inbox_id: str
    policy_id: str
    metric: str
    cycle: int = 0
    due_at: datetime


@payload_type("sla.breached", topic=CONVERSATIONS)
class SlaBreached(Payload, frozen=True, kw_only=True):
    """``due_at`` has passed without the agent's answer (or resolution) the policy asks for."""

    inbox_id: str
    policy_id: str
    metric: str
    cycle: int = 0
    due_at: datetime
