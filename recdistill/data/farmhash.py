"""FarmHash Fingerprint64 in numpy: TensorFlow's string hash without importing TensorFlow.

The row splits (``recdistill.data.folds``) put a key in a bucket by
``tf.strings.to_hash_bucket_fast``, which is ``Fingerprint64(text) % buckets``, and training
filters its rows with that op inside tf.data. A step that only splits a table (the pipeline's
``prepare_sweep``) would import TensorFlow for that one hash: about 7 s of a 2-core machine per
run. This module computes the same Fingerprint64 (FarmHash's ``farmhashna::Hash64``, the one TF
links) over a whole array at once, so such a step stays TF-free and the buckets match TF's bit
for bit (tests compare both on every length branch).

Every step is uint64 arithmetic that wraps, as in C: numpy's uint64 arrays do exactly that.
"""

from typing import Sequence

import numpy as np

_K0 = np.uint64(0xC3A5C85C97CB3127)
_K1 = np.uint64(0xB492B66FBE98F273)
_K2 = np.uint64(0x9AE16A3B2F90404F)


def fingerprint64(values: Sequence[bytes]) -> np.ndarray:
    """FarmHash Fingerprint64 of each byte string (what TF's ``Fingerprint64`` returns)."""
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    flat = np.frombuffer(b"".join(values) + bytes(8), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    out = np.empty(len(values), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for branch, selected in ((_len0to16, lengths <= 16),
                                 (_len17to32, (lengths > 16) & (lengths <= 32)),
                                 (_len33to64, (lengths > 32) & (lengths <= 64)),
                                 (_len_over64, lengths > 64)):
            if selected.any():
                out[selected] = branch(_Strings(flat, starts[selected], lengths[selected]))
    return out


class _Strings:
    """Byte strings laid end to end in ``flat``; reads little-endian words at offsets."""

    def __init__(self, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
        self.flat, self.starts, self.lengths = flat, starts, lengths
        self.size = lengths.astype(np.uint64)

    def _bytes(self, offsets, width: int) -> np.ndarray:
        index = (self.starts + offsets)[:, None] + np.arange(width)
        return np.ascontiguousarray(self.flat[index])

    def fetch64(self, offsets) -> np.ndarray:
        return self._bytes(offsets, 8).view("<u8").ravel().astype(np.uint64)

    def fetch32(self, offsets) -> np.ndarray:
        return self._bytes(offsets, 4).view("<u4").ravel().astype(np.uint64)

    def byte(self, offsets) -> np.ndarray:
        return self.flat[self.starts + offsets].astype(np.uint64)


def _rotate(value, shift: int):
    return (value >> np.uint64(shift)) | (value << np.uint64(64 - shift))


def _shift_mix(value):
    return value ^ (value >> np.uint64(47))


def _hash_len16(u, v, mul):
    a = (u ^ v) * mul
    a ^= a >> np.uint64(47)
    b = (v ^ a) * mul
    b ^= b >> np.uint64(47)
    return b * mul


def _len0to16(s: _Strings) -> np.ndarray:
    n, out = s.lengths, np.full(len(s.lengths), _K2, dtype=np.uint64)
    mul = _K2 + s.size * np.uint64(2)
    long = n >= 8
    if long.any():
        part = _Strings(s.flat, s.starts[long], n[long])
        a = part.fetch64(0) + _K2
        b = part.fetch64(part.lengths - 8)
        c = _rotate(b, 37) * mul[long] + a
        d = (_rotate(a, 25) + b) * mul[long]
        out[long] = _hash_len16(c, d, mul[long])
    middle = (n >= 4) & (n < 8)
    if middle.any():
        part = _Strings(s.flat, s.starts[middle], n[middle])
        a = part.fetch32(0)
        out[middle] = _hash_len16(part.size + (a << np.uint64(3)),
                                  part.fetch32(part.lengths - 4), mul[middle])
    short = (n > 0) & (n < 4)
    if short.any():
        part = _Strings(s.flat, s.starts[short], n[short])
        y = part.byte(0) + (part.byte(part.lengths >> 1) << np.uint64(8))
        z = part.size + (part.byte(part.lengths - 1) << np.uint64(2))
        out[short] = _shift_mix(y * _K2 ^ z * _K0) * _K2
    return out


def _ends(s: _Strings, first_mul: np.uint64) -> tuple:
    """The words both 17-32 and 33-64 byte strings start from: the first two, the last two."""
    mul = _K2 + s.size * np.uint64(2)
    return (mul, s.fetch64(0) * first_mul, s.fetch64(8), s.fetch64(s.lengths - 8) * mul,
            s.fetch64(s.lengths - 16) * _K2)


def _len17to32(s: _Strings) -> np.ndarray:
    mul, a, b, c, d = _ends(s, _K1)
    return _hash_len16(_rotate(a + b, 43) + _rotate(c, 30) + d,
                       a + _rotate(b + _K2, 18) + c, mul)


def _len33to64(s: _Strings) -> np.ndarray:
    mul, a, b, c, d = _ends(s, _K2)
    y = _rotate(a + b, 43) + _rotate(c, 30) + d
    z = _hash_len16(y, a + _rotate(b + _K2, 18) + c, mul)
    e = s.fetch64(16) * mul
    f = s.fetch64(24)
    g = (y + s.fetch64(s.lengths - 32)) * mul
    h = (z + s.fetch64(s.lengths - 24)) * mul
    return _hash_len16(_rotate(e + f, 43) + _rotate(g, 30) + h,
                       e + _rotate(f + a, 18) + g, mul)


def _weak_hash32(s: _Strings, offsets, a, b) -> tuple:
    w, x, y, z = (s.fetch64(offsets + k) for k in (0, 8, 16, 24))
    a = a + w
    b = _rotate(b + a + z, 21)
    c = a
    a = a + x + y
    b = b + _rotate(a, 44)
    return a + z, b + c


def _len_over64(s: _Strings) -> np.ndarray:
    """Strings over 64 bytes: 64-byte chunks, every string advanced while it has chunks left."""
    n = len(s.lengths)
    seed = np.uint64(81)
    x = np.full(n, seed * _K2, dtype=np.uint64) + s.fetch64(0)
    y = np.full(n, seed * _K1 + np.uint64(113), dtype=np.uint64)
    z = _shift_mix(y * _K2 + np.uint64(113)) * _K2
    v0 = v1 = w0 = w1 = np.zeros(n, dtype=np.uint64)
    chunks = (s.lengths - 1) // 64
    for chunk in range(int(chunks.max())):
        live, p = chunk < chunks, chunk * 64
        nx = _rotate(x + y + v0 + s.fetch64(p + 8), 37) * _K1
        ny = _rotate(y + v1 + s.fetch64(p + 48), 42) * _K1
        nx = nx ^ w1
        ny = ny + v0 + s.fetch64(p + 40)
        nz = _rotate(z + w0, 33) * _K1
        nv0, nv1 = _weak_hash32(s, p, v1 * _K1, nx + w0)
        nw0, nw1 = _weak_hash32(s, p + 32, nz + w1, ny + s.fetch64(p + 16))
        x, y, z = (np.where(live, new, old) for new, old in ((nz, x), (ny, y), (nx, z)))
        v0, v1, w0, w1 = (np.where(live, new, old)
                          for new, old in ((nv0, v0), (nv1, v1), (nw0, w0), (nw1, w1)))
    mul = _K1 + ((z & np.uint64(0xFF)) << np.uint64(1))
    last = s.lengths - 64
    w0 = w0 + ((s.lengths - 1) & 63).astype(np.uint64)
    v0 = v0 + w0
    w0 = w0 + v0
    x = _rotate(x + y + v0 + s.fetch64(last + 8), 37) * mul
    y = _rotate(y + v1 + s.fetch64(last + 48), 42) * mul
    x = x ^ (w1 * np.uint64(9))
    y = y + v0 * np.uint64(9) + s.fetch64(last + 40)
    z = _rotate(z + w0, 33) * mul
    v0, v1 = _weak_hash32(s, last, v1 * mul, x + w0)
    w0, w1 = _weak_hash32(s, last + 32, z + w1, y + s.fetch64(last + 16))
    x, z = z, x
    return _hash_len16(_hash_len16(v0, w0, mul) + _shift_mix(y) * _K0 + z,
                       _hash_len16(v1, w1, mul) + x, mul)
