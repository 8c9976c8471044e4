"""An agent typing in a conversation, told to whatever shows it to the customer.

The realtime layer hears agents type (their sockets); the channels can show it to the customer
(Messenger's and Instagram's ``typing_on``, Telegram's ``sendChatAction``). They meet only through
this protocol: the channels' part installs a listener on the hub at start (``Hub.typing``), the
realtime layer calls it. The call returns at once: showing it is the listener's own work.
"""

from __future__ import annotations

from typing import Protocol


class AgentTyping(Protocol):
    def agent_typing(self, account_id: str, conversation_id: str, on: bool) -> None:
        """An agent started (``on``) or stopped typing a reply in the conversation."""
        ...


class NobodyListens:
    """For a process without channels: typing goes nowhere."""

    def agent_typing(self, account_id: str, conversation_id: str, on: bool) -> None:
        return None
