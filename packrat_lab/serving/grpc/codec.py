"""ModelInferRequest/Response (tritonclient's generated messages) <-> the HTTP side's Tensor.

Inputs come as `raw_input_contents` (little-endian bytes, one entry per input, what
tritonclient.grpc sends) or as typed `contents` (fp32_contents, int64_contents, ...). Outputs
always go back as `raw_output_contents`, as Triton answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from packrat_lab.serving.http.protocol import DATATYPES, ProtocolError, Tensor

__all__ = ["TYPED_FIELDS", "decode_inputs", "encode_response"]

# v2 datatype -> the InferTensorContents field that carries it (FP16 has none: raw only)
TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def _raw_tensor(
    raw: bytes, shape: tuple[int, ...], dtype: np.dtype[Any], name: str, where: str
) -> np.ndarray:
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        msg = f"{where} has {len(raw)} bytes in raw_input_contents but shape {list(shape)} of {name} needs {expected}"
        raise ProtocolError(msg)
    # a writable copy: torch.from_numpy refuses read-only buffers
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _typed_tensor(
    entry: Any, shape: tuple[int, ...], dtype: np.dtype[Any], name: str, where: str
) -> np.ndarray:
    field = TYPED_FIELDS.get(name)
    if field is None:
        msg = f"{where} of datatype {name} must be sent in raw_input_contents; example: tritonclient's set_data_from_numpy"
        raise ProtocolError(msg)
    values = getattr(entry.contents, field)
    count = math.prod(shape)
    if len(values) != count:
        msg = f"{where} has {len(values)} values in contents.{field} but shape {list(shape)} needs {count}"
        raise ProtocolError(msg)
    try:
        return np.asarray(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        msg = f"{where} contents do not fit {name}: {exc}"
        raise ProtocolError(msg) from None


def decode_inputs(request: Any) -> tuple[Tensor, ...]:
    """The request's input tensors, checked against their declared datatype and shape."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        msg = (
            f"request has {len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one per input"
        )
        raise ProtocolError(msg)
    tensors: list[Tensor] = []
    for i, entry in enumerate(request.inputs):
        where = f"input {entry.name!r}"
        dtype = DATATYPES.get(entry.datatype)
        if dtype is None:
            msg = f"{where} has datatype {entry.datatype!r}; valid: {', '.join(DATATYPES)} (example: 'FP32')"
            raise ProtocolError(msg)
        shape = tuple(int(d) for d in entry.shape)
        if any(d < 0 for d in shape):
            msg = f"{where} has a negative dimension in shape {list(shape)}; example: [1, 4]"
            raise ProtocolError(msg)
        if raw:
            array = _raw_tensor(raw[i], shape, dtype, entry.datatype, where)
        else:
            array = _typed_tensor(entry, shape, dtype, entry.datatype, where)
        tensors.append(Tensor(entry.name, array))
    return tuple(tensors)


def encode_response(model_name: str, version: str, request_id: str, outputs: list[Tensor]) -> Any:
    """A ModelInferResponse carrying `outputs` as little-endian raw bytes."""
    from tritonclient.grpc import service_pb2 as pb

    response = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request_id)
    for tensor in outputs:
        array = np.ascontiguousarray(tensor.array)
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(array.shape))
        response.raw_output_contents.append(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return response
