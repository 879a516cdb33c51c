"""The Step stream's per-layer messages (attention.proto), encoded and decoded by hand in the
protobuf wire format, so a layer's tensors go from the caller's arrays into the message in one
copy and its answer is read in place: a StepRequest is its optional ``plan`` (field 1,
serialized once per step by protobuf) followed by ``layer`` (field 2: LayerTensors with
``layer`` = 1, ``q`` = 2, ``k`` = 3, ``v`` = 4); a StepResponse holds ``layer`` (1) and
``out`` (2). Pure functions.
"""

from __future__ import annotations

from typing import Any, Tuple

from kvtier.v1 import attention_pb2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


_PLAN_KEY = _key(1, _LEN)
_LAYER_KEY = _key(2, _LEN)
_LAYER_NUMBER_KEY = _key(1, _VARINT)
_TENSOR_KEYS = (_key(2, _LEN), _key(3, _LEN), _key(4, _LEN))


def plan_field(plan: attention_pb2.StepPlan) -> bytes:
    """StepRequest's ``plan`` field, to put before a step's first layer."""
    serialized = plan.SerializeToString()
    return _PLAN_KEY + _varint(len(serialized)) + serialized


def step_request(prefix: bytes, layer: int, q: Any, k: Any, v: Any) -> bytes:
    """A StepRequest: ``prefix`` (a plan field, or nothing) and ``layer`` (>= 0) with its
    tensors, C-contiguous buffers (numpy arrays) of their raw bytes."""
    number = _varint(layer)
    parts = [_LAYER_NUMBER_KEY, number]
    size = len(_LAYER_NUMBER_KEY) + len(number)
    for key, tensor in zip(_TENSOR_KEYS, (q, k, v)):
        length = _varint(tensor.nbytes)
        parts += (key, length, tensor)
        size += len(key) + len(length) + tensor.nbytes
    return b"".join([prefix, _LAYER_KEY, _varint(size), *parts])


def _read_varint(data: bytes, at: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def step_response(data: bytes) -> Tuple[int, int, int]:
    """A StepResponse's ``layer``, and where its ``out`` bytes are: (layer, offset, size).
    ValueError for a malformed message."""
    layer, offset, size = 0, 0, 0
    at, end = 0, len(data)
    try:
        while at < end:
            key, at = _read_varint(data, at)
            field, wire_type = key >> 3, key & 7
            if wire_type == _VARINT:
                value, at = _read_varint(data, at)
                if field == 1:
                    layer = value
            elif wire_type == _LEN:
                length, at = _read_varint(data, at)
                if field == 2:
                    offset, size = at, length
                at += length
            elif wire_type == _I64:
                at += 8
            elif wire_type == _I32:
                at += 4
            else:
                raise ValueError(f"wire type {wire_type}")
    except IndexError:
        raise ValueError("truncated") from None
    if at != end:
        raise ValueError("truncated")
    return layer, offset, size
