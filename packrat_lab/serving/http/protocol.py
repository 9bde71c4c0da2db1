"""Open Inference Protocol v2 (KServe v2) codec: JSON tensors and the binary tensor data extension.

Pure NumPy, no torch and no HTTP: the server, the load generator and the tests share it.
A request body is a JSON object, optionally followed by raw little-endian tensor bytes; the
`Inference-Header-Content-Length` header says where the JSON ends, and each binary tensor carries
`parameters.binary_data_size` (bytes, in input order).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "ProtocolError",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "decode_infer_request",
    "decode_infer_response",
    "encode_infer_request",
    "encode_infer_response",
]

HEADER_LENGTH = "Inference-Header-Content-Length"

# v2 datatype name -> little-endian NumPy dtype (BYTES is not supported: models here take tensors)
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_EXAMPLE = (
    '{"inputs": [{"name": "INPUT", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}'
)


class ProtocolError(ValueError):
    """A request the protocol cannot accept; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Tensor:
    """One named tensor as it crosses the wire."""

    name: str
    array: np.ndarray

    @property
    def datatype(self) -> str:
        """The v2 datatype name of the array."""
        return datatype_of(self.array.dtype)


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for, and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] = ()
    id: str | None = None
    binary_output: bool = False  # request parameter binary_data_output: default for unlisted outputs
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def wants_binary(self, name: str) -> bool:
        """Whether output `name` goes back as binary data."""
        for out in self.outputs:
            if out.name == name:
                return out.binary
        return self.binary_output


def datatype_of(dtype: np.dtype[Any] | type) -> str:
    """The v2 datatype name of a NumPy dtype, e.g. float32 -> 'FP32'."""
    wanted = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    for name, known in DATATYPES.items():
        if known == wanted:
            return name
    msg = f"dtype {np.dtype(dtype)} has no Open Inference Protocol datatype; example: float32 (FP32)"
    raise ProtocolError(msg)


def _split_body(body: bytes, header_length: int | None) -> tuple[dict[str, Any], bytes]:
    """The JSON object and the binary tail of a body."""
    if header_length is None:
        json_part, tail = body, b""
    else:
        if header_length < 0 or header_length > len(body):
            msg = (
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes; "
                "it must be the byte length of the JSON part, e.g. 120"
            )
            raise ProtocolError(msg)
        json_part, tail = body[:header_length], body[header_length:]
    try:
        obj = json.loads(json_part)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"request body is not valid JSON ({exc}); example: {_EXAMPLE}"
        raise ProtocolError(msg) from None
    if not isinstance(obj, dict):
        msg = f"request body must be a JSON object, got {type(obj).__name__}; example: {_EXAMPLE}"
        raise ProtocolError(msg)
    return obj, tail


def _shape_of(entry: Mapping[str, Any], where: str) -> tuple[int, ...]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        msg = f"{where} needs 'shape' as a list of integers, got {shape!r}; example: [1, 4]"
        raise ProtocolError(msg)
    if any(d < 0 for d in shape):
        msg = f"{where} has a negative dimension in shape {shape}; example: [1, 4]"
        raise ProtocolError(msg)
    return tuple(shape)


def _dtype_of(entry: Mapping[str, Any], where: str) -> np.dtype[Any]:
    name = entry.get("datatype")
    dtype = DATATYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        msg = f"{where} has datatype {name!r}; valid: {', '.join(DATATYPES)} (example: 'FP32')"
        raise ProtocolError(msg)
    return dtype


def _flatten(data: Any) -> list[Any]:
    """Row-major flattening of the nested or flat JSON `data` list."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _json_tensor(
    entry: Mapping[str, Any], shape: tuple[int, ...], dtype: np.dtype[Any], where: str
) -> np.ndarray:
    if "data" not in entry:
        msg = f"{where} has neither 'data' nor parameters.binary_data_size; example: {_EXAMPLE}"
        raise ProtocolError(msg)
    values = _flatten(entry["data"])
    count = math.prod(shape)
    if len(values) != count:
        msg = f"{where} has {len(values)} values in 'data' but shape {list(shape)} needs {count}"
        raise ProtocolError(msg)
    kind = dtype.kind
    for v in values:
        ok = (
            isinstance(v, bool)
            if kind == "b"
            else isinstance(v, int) and not isinstance(v, bool)
            if kind in "iu"
            else isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        if not ok:
            msg = (
                f"{where} has value {v!r} that is not {datatype_of(dtype)}; example data: [0.1, 0.2] for FP32"
            )
            raise ProtocolError(msg)
    try:
        return np.asarray(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        msg = f"{where} data does not fit {datatype_of(dtype)}: {exc}"
        raise ProtocolError(msg) from None


def _binary_tensor(
    size: Any, tail: bytes, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any], where: str
) -> np.ndarray:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        msg = (
            f"{where} has binary_data_size {size!r}; it must be a byte count, e.g. {4 * 4} for 4 FP32 values"
        )
        raise ProtocolError(msg)
    expected = math.prod(shape) * dtype.itemsize
    if size != expected:
        msg = (
            f"{where} has binary_data_size {size} but shape {list(shape)} of {datatype_of(dtype)} "
            f"needs {expected} bytes"
        )
        raise ProtocolError(msg)
    if offset + size > len(tail):
        msg = f"{where} needs {size} binary bytes but only {len(tail) - offset} follow the JSON header"
        raise ProtocolError(msg)
    # a writable copy: torch.from_numpy refuses read-only buffers
    return np.frombuffer(tail, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()


def _parameters(entry: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    params = entry.get("parameters", {})
    if not isinstance(params, dict):
        msg = (
            f"{where} 'parameters' must be a JSON object, got {params!r}; example: {{\"binary_data\": true}}"
        )
        raise ProtocolError(msg)
    return params


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Decode a v2 infer request body (JSON, or JSON + binary tail when `header_length` is given)."""
    obj, tail = _split_body(body, header_length)
    raw_inputs = obj.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        msg = f"request needs a non-empty 'inputs' list; example: {_EXAMPLE}"
        raise ProtocolError(msg)
    inputs: list[Tensor] = []
    offset = 0
    for i, entry in enumerate(raw_inputs):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            msg = f"inputs[{i}] must be an object with a 'name'; example: {_EXAMPLE}"
            raise ProtocolError(msg)
        where = f"input {entry['name']!r}"
        shape, dtype = _shape_of(entry, where), _dtype_of(entry, where)
        params = _parameters(entry, where)
        if "binary_data_size" in params:
            array = _binary_tensor(params["binary_data_size"], tail, offset, shape, dtype, where)
            offset += int(params["binary_data_size"])
        else:
            array = _json_tensor(entry, shape, dtype, where)
        inputs.append(Tensor(entry["name"], array))
    if offset != len(tail):
        msg = f"request carries {len(tail)} binary bytes but its inputs declare {offset} (binary_data_size)"
        raise ProtocolError(msg)
    outputs: list[RequestedOutput] = []
    raw_outputs = obj.get("outputs", [])
    if not isinstance(raw_outputs, list):
        msg = f'\'outputs\' must be a list, got {raw_outputs!r}; example: [{{"name": "OUTPUT"}}]'
        raise ProtocolError(msg)
    for entry in raw_outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            msg = f'each requested output needs a \'name\', got {entry!r}; example: {{"name": "OUTPUT"}}'
            raise ProtocolError(msg)
        params = _parameters(entry, f"output {entry['name']!r}")
        outputs.append(RequestedOutput(entry["name"], bool(params.get("binary_data", False))))
    params = _parameters(obj, "request")
    request_id = obj.get("id")
    return InferRequest(
        tuple(inputs),
        tuple(outputs),
        str(request_id) if request_id is not None else None,
        bool(params.get("binary_data_output", False)),
        params,
    )


def _tensor_entries(
    tensors: Sequence[Tensor], binary: Sequence[bool]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor, as_binary in zip(tensors, binary, strict=True):
        array = np.ascontiguousarray(tensor.array)
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(array.shape)}
        if as_binary:
            raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    return entries, chunks


def _join(obj: Mapping[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, int | None]:
    header = json.dumps(obj, separators=(",", ":")).encode()
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def encode_infer_response(
    model_name: str,
    outputs: Sequence[Tensor],
    request: InferRequest,
    *,
    model_version: str | None = None,
) -> tuple[bytes, int | None]:
    """Body and header length (None if pure JSON) of the answer to `request`."""
    binary = [request.wants_binary(t.name) for t in outputs]
    entries, chunks = _tensor_entries(outputs, binary)
    obj: dict[str, Any] = {"model_name": model_name, "outputs": entries}
    if model_version is not None:
        obj["model_version"] = model_version
    if request.id is not None:
        obj["id"] = request.id
    return _join(obj, chunks)


def encode_infer_request(
    inputs: Sequence[Tensor],
    *,
    binary: bool = True,
    outputs: Sequence[RequestedOutput] = (),
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """Client side: body and header length of a request (binary inputs and outputs if `binary`)."""
    entries, chunks = _tensor_entries(inputs, [binary] * len(inputs))
    obj: dict[str, Any] = {"inputs": entries}
    if outputs:
        obj["outputs"] = [{"name": o.name, "parameters": {"binary_data": o.binary}} for o in outputs]
    elif binary:
        obj["parameters"] = {"binary_data_output": True}
    if request_id is not None:
        obj["id"] = request_id
    return _join(obj, chunks)


def decode_infer_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Client side: output name -> array from a response body."""
    obj, tail = _split_body(body, header_length)
    raw = obj.get("outputs")
    if not isinstance(raw, list):
        msg = f"response has no 'outputs' list: {str(obj)[:200]}"
        raise ProtocolError(msg)
    result: dict[str, np.ndarray] = {}
    offset = 0
    for entry in raw:
        where = f"output {entry.get('name')!r}"
        shape, dtype = _shape_of(entry, where), _dtype_of(entry, where)
        params = _parameters(entry, where)
        if "binary_data_size" in params:
            result[entry["name"]] = _binary_tensor(
                params["binary_data_size"], tail, offset, shape, dtype, where
            )
            offset += int(params["binary_data_size"])
        else:
            result[entry["name"]] = _json_tensor(entry, shape, dtype, where)
    return result
