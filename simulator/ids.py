"""Deterministic identifiers and codes for the simulated tenant.

A million vouchers must not cost a million stored strings, so voucher ids,
voucher codes and reservation codes are computed from the voucher's position
through a keyed bijection. Being a bijection, a code can be mapped back to its
position, which gives exact-code lookups without any index.
"""

from __future__ import annotations

import random
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(CROCKFORD)}


class Bijection:
    """A keyed permutation of the integers ``[0, 2**bits)`` and its inverse."""

    def __init__(self, bits: int, rng: random.Random) -> None:
        self.bits = bits
        self.mask = (1 << bits) - 1
        self.key = rng.getrandbits(bits)
        # odd multipliers are invertible modulo a power of two
        self.m1 = rng.getrandbits(bits) | 1
        self.m2 = rng.getrandbits(bits) | 1
        self.i1 = pow(self.m1, -1, 1 << bits)
        self.i2 = pow(self.m2, -1, 1 << bits)
        self.s1 = bits // 2 + 1
        self.s2 = bits // 3 + 1

    def forward(self, x: int) -> int:
        """Map ``x`` to its permuted value."""
        mask = self.mask
        x = (x ^ self.key) & mask
        x ^= x >> self.s1
        x = (x * self.m1) & mask
        x ^= x >> self.s2
        x = (x * self.m2) & mask
        x ^= x >> self.s1
        return x

    def inverse(self, y: int) -> int:
        """Map a permuted value back to ``x``."""
        mask = self.mask
        y = _unshift(y, self.s1, self.bits)
        y = (y * self.i2) & mask
        y = _unshift(y, self.s2, self.bits)
        y = (y * self.i1) & mask
        y = _unshift(y, self.s1, self.bits)
        return (y ^ self.key) & mask


def _unshift(y: int, s: int, bits: int) -> int:
    x = y
    # each pass recovers ``s`` more high bits of the original value
    for _ in range(bits // s + 1):
        x = y ^ (x >> s)
    return x


def uuid_like(value: int) -> str:
    """Format a 128-bit integer the way the API formats ids."""
    h = "%032x" % value
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_uuid(rng: random.Random) -> str:
    """A uuid-like id drawn from ``rng`` (never from the OS)."""
    return uuid_like(rng.getrandbits(128))


def encode32(value: int, length: int) -> str:
    """Crockford base-32 with a fixed length, most significant digit first."""
    out = []
    for _ in range(length):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def decode32(text: str) -> int | None:
    """Inverse of :func:`encode32`; None when ``text`` is not base 32."""
    value = 0
    for ch in text:
        digit = _DECODE.get(ch)
        if digit is None:
            return None
        value = (value << 5) | digit
    return value


def iso(ts: int) -> str:
    """Epoch seconds to the API's ISO-8601 UTC form."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
