"""The email channel's manifest: any mailbox, read over IMAP and sent through over SMTP.

Inbox settings: ``address`` (the inbox's address: the From of replies; required),
``from_name``; ``imap_host``, ``imap_port`` (993), ``imap_security`` (``tls``, ``starttls``
or ``none``), ``imap_folder`` (``INBOX``), ``processed`` (``seen``: flag \\Seen, or ``move``:
move to ``processed_folder``), ``poll_seconds`` (60; IDLE is used where the server has it);
``smtp_host``, ``smtp_port`` (465), ``smtp_security`` (``tls``, ``starttls`` or ``none``),
``sent_folder`` (append a copy of every reply there); ``plus_addressing`` (``user+tag@`` is
``user@``), ``use_reply_to``, ``thread_window_days`` (30: how long the subject rule joins a
contact's mails), ``max_attachment_bytes`` (25 MB).
Secrets: ``imap_username``, ``imap_password``, ``smtp_username``, ``smtp_password``, and
``webhook_secret`` for mail POSTed to the inbox's webhook by an MTA (signed like the API channel:
``X-Hub-Signature-256``).
"""

from channels._base import Capability, Manifest
from hub.events import MessageStatus

MANIFEST = Manifest(
    id="email",
    name="Email (IMAP / SMTP)",
    capabilities=frozenset({Capability.TEXT, Capability.MEDIA}),
    required_secrets=(),
    required_settings=("address",),
    identity="email",
    # the Action of a delivery status notification (RFC 3464, section 2.3.3)
    statuses={
        "failed": MessageStatus.FAILED,
        "delayed": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "relayed": MessageStatus.SENT,
        "expanded": MessageStatus.DELIVERED,
    },
)

SECURITY = ("tls", "starttls", "none")
PROCESSED = ("seen", "move")
