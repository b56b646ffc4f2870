"""Id strings as fixed-width bytes: UUID-like session ids and zero-padded numbers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate.events import NO_SESSION, EventBlock, IntArray

SESSION_ID_WIDTH = 36
SessionIds = NDArray[np.void]  # one 36-byte item per row

_U64 = np.uint64
# Four hex characters of every 16-bit value, as one little-endian 32-bit word.
_HEX4 = np.frombuffer(
    b"".join(f"{(i & 0xFF):02x}{(i >> 8):02x}".encode() for i in range(1 << 16)), dtype="<u4"
)
_TRIPLES = np.frombuffer("".join(f"{i:03d}" for i in range(1000)).encode(), dtype="V3")
_DASHES = [8, 13, 18, 23]
_WORD_AT = (0, 4, 9, 14, 19, 24, 28, 32)
_VARIANT = np.frombuffer(b"89ab", dtype=np.uint8)


def session_ids(keys: IntArray, salt: NDArray[np.uint64]) -> SessionIds:
    """UUID-like ids of 64-bit session keys; a bijective mix keeps distinct keys distinct."""
    n = keys.shape[0]
    raw = np.empty((n, 2), dtype=_U64)
    raw[:, 0] = _splitmix(keys.astype(_U64) + salt[0])
    raw[:, 1] = _splitmix(keys.astype(_U64) ^ salt[1])
    words = raw.view(np.uint16)
    out = np.empty((n, SESSION_ID_WIDTH), dtype=np.uint8)
    # Each 16-bit value becomes 4 hex characters written as one (unaligned) 32-bit store per
    # row: 8 strided column writes instead of a per-character shuffle.
    for j, at in enumerate(_WORD_AT):
        column = np.ndarray((n,), dtype="<u4", buffer=out, offset=at, strides=(SESSION_ID_WIDTH,))
        column[:] = _HEX4[words[:, j]]
    out[:, _DASHES] = ord("-")
    out[:, 14] = ord("4")  # version 4 and variant 10xx, as uuid4 strings look
    out[:, 19] = _VARIANT[words[:, 0] & 3]
    return out.view(f"V{SESSION_ID_WIDTH}").reshape(n)


def digits(values: IntArray, width: int) -> NDArray[np.uint8]:
    """Non-negative integers as zero-padded ASCII digits, one row of `width` bytes each."""
    n = values.shape[0]
    out = np.empty((n, width), dtype=np.uint8)
    rest = values.astype(np.int64)
    for end in range(width, 0, -3):  # three digits per table lookup, from the right
        size = min(3, end)
        rest, part = np.divmod(rest, 10**size)
        out[:, end - size : end] = _TRIPLES[part].view(np.uint8).reshape(n, 3)[:, 3 - size :]
    return out


def _splitmix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser: a bijection on 64-bit integers with good mixing."""
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def with_session_ids(block: EventBlock, salt: NDArray[np.uint64]) -> EventBlock:
    """The block with its session id strings (rows without a session get a blank filler)."""
    keys = block.session
    valid = keys != NO_SESSION
    if not valid.any():
        return replace(block, sid=np.zeros(len(block), f"V{SESSION_ID_WIDTH}"))
    low, high = int(keys[valid].min()), int(keys[valid].max())
    if high - low < 4 * len(block):
        # A window's keys form one dense range: render each session once, then gather.
        table = session_ids(np.arange(low, high + 1, dtype=np.int64), salt)
        return replace(block, sid=np.take(table, np.where(valid, keys - low, 0)))
    return replace(block, sid=session_ids(np.where(valid, keys, 0), salt))
