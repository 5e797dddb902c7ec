"""The few protobuf wire-format operations the codec needs, without a protobuf dependency.

TenSEAL serializes contexts and vectors as protobuf messages (``tensealcontext.proto``,
``tensors.proto`` in TenSEAL 0.3.18). We read fields out of them (the secret key of a
private context, the ciphertexts of a vector) and write the small ``CKKSVectorProto`` that
wraps SEAL ciphertexts, so that what we send is exactly what TenSEAL itself loads. The
messages are tiny in structure, so a field scanner is simpler and stricter than generated
classes: unknown wire types are refused, lengths are bounds-checked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_BYTES = 2
WIRE_FIXED32 = 5


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message (callers map this to a typed error)."""


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    #: the varint value for WIRE_VARINT, else the raw bytes (a view into the message)
    value: int | memoryview


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint longer than 64 bits")


def iter_fields(data: bytes | memoryview) -> Iterator[Field]:
    """Yield the top-level fields of a message in order; values are zero-copy views."""
    buf = memoryview(data)
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        value: int | memoryview
        if wire_type == WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire_type == WIRE_BYTES:
            length, pos = _read_varint(buf, pos)
            if length > len(buf) - pos:
                raise ProtoError("length-delimited field runs past the end")
            value = buf[pos : pos + length]
            pos += length
        elif wire_type == WIRE_FIXED64:
            if pos + 8 > len(buf):
                raise ProtoError("truncated fixed64")
            value = buf[pos : pos + 8]
            pos += 8
        elif wire_type == WIRE_FIXED32:
            if pos + 4 > len(buf):
                raise ProtoError("truncated fixed32")
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise ProtoError(f"unsupported wire type {wire_type}")
        yield Field(number, wire_type, value)


def fields_by_number(data: bytes | memoryview) -> dict[int, list[Field]]:
    out: dict[int, list[Field]] = {}
    for field in iter_fields(data):
        out.setdefault(field.number, []).append(field)
    return out


def varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def bytes_field_header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited field, for writing its payload separately."""
    return varint((number << 3) | WIRE_BYTES) + varint(length)


def bytes_field(number: int, payload: bytes | memoryview) -> bytes:
    return bytes_field_header(number, len(payload)) + bytes(payload)


def double_field(number: int, value: float) -> bytes:
    return varint((number << 3) | WIRE_FIXED64) + struct.pack("<d", value)


def read_double(field: Field) -> float:
    if field.wire_type != WIRE_FIXED64 or not isinstance(field.value, memoryview):
        raise ProtoError(f"field {field.number} is not a double")
    return float(struct.unpack("<d", field.value)[0])


def read_bytes(field: Field) -> memoryview:
    if field.wire_type != WIRE_BYTES or not isinstance(field.value, memoryview):
        raise ProtoError(f"field {field.number} is not length-delimited")
    return field.value


def read_packed_varints(field: Field) -> list[int]:
    """A repeated scalar field: packed (one length-delimited run) or a single plain varint."""
    if field.wire_type == WIRE_VARINT and isinstance(field.value, int):
        return [field.value]
    buf = read_bytes(field)
    values: list[int] = []
    pos = 0
    while pos < len(buf):
        value, pos = _read_varint(buf, pos)
        values.append(value)
    return values


# --- TenSEAL's CKKSVectorProto: repeated uint32 sizes = 1; repeated bytes ciphertexts = 2;
# --- double scale = 3.

VECTOR_SIZES = 1
VECTOR_CIPHERTEXTS = 2
VECTOR_SCALE = 3


def iter_ckks_vector(
    sizes: Iterable[int], ciphertexts: Iterable[bytes], scale: float
) -> Iterator[bytes]:
    """The pieces of a TenSEAL ``CKKSVectorProto`` (what ``ckks_vector_from`` loads) holding
    these SEAL ciphertexts, produced one ciphertext at a time."""
    packed = b"".join(varint(size) for size in sizes)
    yield bytes_field(VECTOR_SIZES, packed)
    for ciphertext in ciphertexts:
        yield bytes_field_header(VECTOR_CIPHERTEXTS, len(ciphertext))
        yield ciphertext
    yield double_field(VECTOR_SCALE, scale)


def encode_ckks_vector(sizes: Iterable[int], ciphertexts: Iterable[bytes], scale: float) -> bytes:
    """Serialize SEAL ciphertexts as a TenSEAL ``CKKSVectorProto``."""
    return b"".join(iter_ckks_vector(sizes, ciphertexts, scale))


@dataclass(frozen=True)
class CkksVectorParts:
    sizes: list[int]
    ciphertexts: list[memoryview]
    scale: float


def decode_ckks_vector(data: bytes | memoryview) -> CkksVectorParts:
    """Split a TenSEAL ``CKKSVectorProto`` into its parts (views, no copies)."""
    sizes: list[int] = []
    ciphertexts: list[memoryview] = []
    scale: float | None = None
    for field in iter_fields(data):
        if field.number == VECTOR_SIZES:
            sizes.extend(read_packed_varints(field))
        elif field.number == VECTOR_CIPHERTEXTS:
            ciphertexts.append(read_bytes(field))
        elif field.number == VECTOR_SCALE:
            scale = read_double(field)
        else:
            raise ProtoError(f"unexpected field {field.number} in a CKKS vector")
    if scale is None:
        raise ProtoError("CKKS vector without a scale")
    return CkksVectorParts(sizes=sizes, ciphertexts=ciphertexts, scale=scale)
