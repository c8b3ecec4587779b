"""Avro's zigzag varint, written: the one encoder the join's splicer and the sink's in-memory files share."""

from __future__ import annotations

__all__ = ["ONE_BYTE", "avro_long"]

#: the varints of zigzag codes 0..127, made once
ONE_BYTE = [bytes((z,)) for z in range(128)]


def avro_long(n: int) -> bytes:
    """``n`` as an Avro int or long (zigzag varint), as fastavro writes it."""
    z = (n << 1) ^ (n >> 63)
    if 0 <= z < 128:
        return ONE_BYTE[z]
    if not 0 <= z < 1 << 64:
        raise OverflowError(f"{n} does not fit an Avro long")
    out = bytearray()
    while z > 127:
        out.append((z & 127) | 128)
        z >>= 7
    out.append(z)
    return bytes(out)
