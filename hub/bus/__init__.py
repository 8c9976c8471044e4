"""The message bus: one contract, several backends (in-process now, Kafka by configuration)."""

from hub.bus.contract import (
    Bus,
    BusMessage,
    ConsumerOptions,
    Handler,
    OutRecord,
    Subscription,
    dead_letter_topic,
)

__all__ = [
    "Bus",
    "BusMessage",
    "ConsumerOptions",
    "Handler",
    "OutRecord",
    "Subscription",
    "dead_letter_topic",
]
