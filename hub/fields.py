"""Value types every door validates with (REST bodies, socket events): one definition, so a socket
refuses exactly what REST refuses."""

from __future__ import annotations

from typing import Annotated

import msgspec

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL

#: a row id as the hub makes them (ULIDs) or as tests and imports name them
RecordId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
#: a message's text
Content = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
#: a client's idempotency key for what it sends
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_NUL)]
