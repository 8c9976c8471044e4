"""Email from any mailbox: IMAP in (``part.py``), SMTP out, MIME parsed, threaded, sanitised."""

from channels.email.adapter import EmailChannel

__all__ = ["EmailChannel"]
