"""How the automation consumers take the stream: in batches that wait a little to fill.

Each of them costs a few statements per batch whatever its size (read the account's rules,
subscriptions or schedules, claim what it acts on), and seven of them follow the stream. Taking
what arrived in the last tenth of a second as one batch, rather than every commit's few events
as their own, cuts those statements several times at a moderate rate; a rule, an auto-reply or an
assignment is then up to 100 ms later, which nobody watching an inbox can tell.
"""

from __future__ import annotations

#: seconds a consumer waits for a fuller batch (not when a full one is ready)
LINGER = 0.1
