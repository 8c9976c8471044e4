"""An embedding as it is stored: 384 float32 values, big-endian (``float4send``'s order), in a
``bytea`` column.

As ``real[]`` every value went through asyncpg's array codec one Python float at a time: 12 ms of
the event loop per 100 vectors written, in one stretch, and a list of floats per vector read back.
As bytes a vector is one copy each way."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_STORED = np.dtype(">f4")


def to_bytes(vector: npt.NDArray[np.floating]) -> bytes:
    return np.asarray(vector, dtype=_STORED).tobytes()


def from_bytes(stored: bytes) -> npt.NDArray[np.float32]:
    if len(stored) % _STORED.itemsize:
        raise ValueError(f"a stored embedding of {len(stored)} bytes is not float32 values")
    return np.frombuffer(stored, dtype=_STORED).astype(np.float32)
