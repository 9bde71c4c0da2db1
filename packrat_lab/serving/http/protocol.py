"""Open Inference Protocol v2 (KServe v2) codec: JSON tensors and the binary tensor data extension.

Pure NumPy, no torch and no HTTP: the server, the load generator and the tests share it.
A request body is a JSON object, optionally followed by raw little-endian tensor bytes; the
`Inference-Header-Content-Length` header says where the JSON ends, and each binary tensor carries
`parameters.binary_data_size` (bytes, in input order).

Strict JSON both ways: the non-standard tokens NaN, Infinity and -Infinity are refused in a body
(400), and never written: a tensor with non-finite values goes out only as binary data (a JSON
answer for it is refused with a message that says so). JSON `data` is checked with NumPy as a
whole (kind and range), not value by value: a float datatype takes numbers, an integer datatype
integers, BOOL true/false (true/false mixed into numbers count as 1/0, as NumPy reads them).
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
    "dumps",
    "encode_infer_request",
    "encode_infer_response",
    "json_object",
    "loads",
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
MAX_DIMS = 32  # a tensor rank beyond this is refused before NumPy sees it (NumPy's own limit is 64)
MAX_DIM = 2**40  # one dimension beyond this is refused before any arithmetic on the shape
_EXAMPLE = (
    '{"inputs": [{"name": "INPUT", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}'
)


class ProtocolError(ValueError):
    """A request the protocol cannot accept; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[str, int]]:
        """Pickled with its status (errors come back from the JSON decoding process)."""
        return (ProtocolError, (str(self), self.status))


def _refuse_constant(token: str) -> Any:
    msg = f"JSON carries the non-standard number {token}; send finite numbers or binary tensor data"
    raise ProtocolError(msg)


def loads(data: bytes | str) -> Any:
    """json.loads that refuses NaN/Infinity and answers absurd nesting with ProtocolError, not RecursionError."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        msg = "JSON is nested too deeply to decode; send a flat 'data' list, e.g. [0.1, 0.2]"
        raise ProtocolError(msg) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"request body is not valid JSON ({exc})"
        raise ProtocolError(msg) from None


def json_object(data: bytes, example: str, what: str = "body") -> dict[str, Any]:
    """`data` as one JSON object; ProtocolError naming `what` and a valid `example` otherwise."""
    try:
        obj = loads(data)
    except ProtocolError as exc:
        msg = f"{exc}; example: {example}"
        raise ProtocolError(msg) from None
    if not isinstance(obj, dict):
        msg = f"{what} must be a JSON object, got {type(obj).__name__}; example: {example}"
        raise ProtocolError(msg)
    return obj


def dumps(obj: Any) -> bytes:
    """Strict, compact JSON: ValueError on NaN/Infinity (map them first; see service.jsonable)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


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
    return json_object(json_part, _EXAMPLE, "request body"), tail


def _shape_of(entry: Mapping[str, Any], where: str) -> tuple[int, ...]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        msg = f"{where} needs 'shape' as a list of integers, got {shape!r}; example: [1, 4]"
        raise ProtocolError(msg)
    if any(d < 0 for d in shape):
        msg = f"{where} has a negative dimension in shape {shape}; example: [1, 4]"
        raise ProtocolError(msg)
    if any(d > MAX_DIM for d in shape):
        msg = f"{where} has a dimension above {MAX_DIM} in its shape; example: [1, 4]"
        raise ProtocolError(msg)
    if len(shape) > MAX_DIMS:
        msg = f"{where} has {len(shape)} dimensions; at most {MAX_DIMS} are accepted, e.g. [1, 4]"
        raise ProtocolError(msg)
    return tuple(shape)


def _dtype_of(entry: Mapping[str, Any], where: str) -> np.dtype[Any]:
    name = entry.get("datatype")
    dtype = DATATYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        msg = f"{where} has datatype {name!r}; valid: {', '.join(DATATYPES)} (example: 'FP32')"
        raise ProtocolError(msg)
    return dtype


_KIND_NAMES = {"b": "true/false", "i": "integer", "u": "integer", "f": "fractional", "U": "string"}


def _json_tensor(
    entry: Mapping[str, Any], shape: tuple[int, ...], dtype: np.dtype[Any], where: str
) -> np.ndarray:
    """The JSON `data` (flat or nested, row-major) as an array, checked as a whole with NumPy."""
    if "data" not in entry:
        msg = f"{where} has neither 'data' nor parameters.binary_data_size; example: {_EXAMPLE}"
        raise ProtocolError(msg)
    try:
        values = np.asarray(entry["data"])
    except (ValueError, TypeError, RecursionError) as exc:  # ragged or absurdly deep nesting
        msg = (
            f"{where} 'data' is not a rectangular list of numbers ({str(exc)[:80]}); example data: [0.1, 0.2]"
        )
        raise ProtocolError(msg) from None
    count = math.prod(shape)
    if values.size != count:
        msg = f"{where} has {values.size} values in 'data' but shape {list(shape)} needs {count}"
        raise ProtocolError(msg)
    if count == 0:
        return np.zeros(shape, dtype)
    _check_kind(values, dtype, where)
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(out).all():
        msg = f"{where} has values beyond the range of {datatype_of(dtype)}; send smaller numbers"
        raise ProtocolError(msg)
    return out


def _check_kind(values: np.ndarray, dtype: np.dtype[Any], where: str) -> None:
    """Refuse data whose NumPy kind does not fit `dtype`, naming one offending value."""
    kind, want = values.dtype.kind, dtype.kind
    ok = kind == "b" if want == "b" else kind in "iu" if want in "iu" else kind in "iuf"
    flat = values.reshape(-1)
    name = datatype_of(dtype)
    if not ok:
        if kind == "O":
            msg = f"{where} 'data' holds null, objects, mixed types or integers beyond 64 bits, not {name} values"
            raise ProtocolError(msg)
        if kind == "f" and want in "iu":
            fractional = np.flatnonzero(flat != np.trunc(flat))
            example = flat[fractional[0]] if fractional.size else flat[0]
        else:
            example = flat[0]
        msg = (
            f"{where} has {_KIND_NAMES.get(kind, kind)} value {example.item()!r} that is not {name}; "
            "example data: [0.1, 0.2] for FP32"
        )
        raise ProtocolError(msg)
    if want in "iu":
        info = np.iinfo(dtype)
        low, high = flat.min(), flat.max()
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            msg = f"{where} has value {bad.item()!r} outside {name}'s range [{info.min}, {info.max}]"
            raise ProtocolError(msg)


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
    """Decode a v2 infer request body (JSON, or JSON + binary tail when `header_length` is given).

    Whatever the body holds, the only exception is ProtocolError (a bad request fails alone).
    """
    try:
        return _decode_infer_request(body, header_length)
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, MemoryError, RecursionError) as exc:
        msg = f"request cannot be decoded ({type(exc).__name__}: {str(exc)[:120]}); example: {_EXAMPLE}"
        raise ProtocolError(msg) from None


def _decode_infer_request(body: bytes, header_length: int | None) -> InferRequest:
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
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
                msg = (
                    f"tensor {tensor.name!r} has {bad} NaN/Infinity values, which strict JSON cannot carry; "
                    f'ask for binary data, e.g. outputs [{{"name": "{tensor.name}", "parameters": {{"binary_data": true}}}}]'
                )
                raise ProtocolError(msg, status=500)
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    return entries, chunks


def _join(obj: Mapping[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, int | None]:
    header = dumps(obj)
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
