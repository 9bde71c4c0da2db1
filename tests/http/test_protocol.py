"""Open Inference Protocol v2 codec: JSON and binary round trips, and the errors clients get."""

from __future__ import annotations

import json

import numpy as np
import pytest

from packrat_lab.serving.http.protocol import (
    InferRequest,
    ProtocolError,
    RequestedOutput,
    Tensor,
    datatype_of,
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
)


def _roundtrip_request(array: np.ndarray, binary: bool) -> np.ndarray:
    body, header = encode_infer_request([Tensor("INPUT", array)], binary=binary)
    request = decode_infer_request(body, header)
    assert [t.name for t in request.inputs] == ["INPUT"]
    return request.inputs[0].array


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.float64, np.uint8, np.bool_])
def test_request_round_trip_keeps_values_shape_and_dtype(binary: bool, dtype: type) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 2, 4)) * 10).astype(dtype)
    back = _roundtrip_request(array, binary)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == (3, 2, 4)
    np.testing.assert_array_equal(back, array)


def test_binary_request_puts_json_first_then_raw_bytes() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    body, header = encode_infer_request([Tensor("INPUT", array)], binary=True)
    assert header is not None
    head = json.loads(body[:header])
    assert head["inputs"][0]["parameters"]["binary_data_size"] == 24
    assert head["parameters"]["binary_data_output"] is True
    assert body[header:] == array.tobytes()


def test_json_request_has_no_binary_tail() -> None:
    body, header = encode_infer_request([Tensor("INPUT", np.ones((1, 2), np.float32))], binary=False)
    assert header is None
    assert json.loads(body)["inputs"][0]["data"] == [1.0, 1.0]


def test_nested_json_data_is_flattened_row_major() -> None:
    body = json.dumps(
        {"inputs": [{"name": "INPUT", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]}]}
    ).encode()
    array = decode_infer_request(body).inputs[0].array
    np.testing.assert_array_equal(array, np.array([[1, 2], [3, 4]]))


def test_two_binary_inputs_are_sliced_in_order() -> None:
    a = np.arange(4, dtype=np.float32)
    b = np.arange(3, dtype=np.int64) + 100
    body, header = encode_infer_request([Tensor("A", a), Tensor("B", b)], binary=True)
    request = decode_infer_request(body, header)
    np.testing.assert_array_equal(request.inputs[0].array, a)
    np.testing.assert_array_equal(request.inputs[1].array, b)


@pytest.mark.parametrize(
    ("outputs", "binary_output", "expect_binary"),
    [
        ((), True, True),
        ((), False, False),
        ((RequestedOutput("OUTPUT", False),), True, False),
        ((RequestedOutput("OUTPUT", True),), False, True),
    ],
)
def test_response_binary_choice_follows_request(
    outputs: tuple[RequestedOutput, ...], binary_output: bool, expect_binary: bool
) -> None:
    out = np.linspace(0, 1, 10, dtype=np.float32).reshape(2, 5)
    request = InferRequest((), outputs, id="req-7", binary_output=binary_output)
    body, header = encode_infer_response("mlp", [Tensor("OUTPUT", out)], request)
    assert (header is not None) is expect_binary
    head = json.loads(body if header is None else body[:header])
    assert head["model_name"] == "mlp"
    assert head["id"] == "req-7"
    assert head["outputs"][0]["shape"] == [2, 5]
    decoded = decode_infer_response(body, header)
    np.testing.assert_array_equal(decoded["OUTPUT"], out)


def test_datatype_names() -> None:
    assert datatype_of(np.float32) == "FP32"
    assert datatype_of(np.dtype(">i8")) == "INT64"
    with pytest.raises(ProtocolError, match="no Open Inference Protocol datatype"):
        datatype_of(np.complex64)


def _json_body(**entry: object) -> bytes:
    base: dict[str, object] = {"name": "INPUT", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]}
    base.update(entry)
    return json.dumps({"inputs": [base]}).encode()


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"{}", None, "non-empty 'inputs'"),
        (_json_body(datatype="FP8"), None, "datatype 'FP8'"),
        (_json_body(shape=[1, 3]), None, "has 2 values in 'data' but shape \\[1, 3\\] needs 3"),
        (_json_body(shape="1x2"), None, "list of integers"),
        (_json_body(shape=[1, -2]), None, "negative dimension"),
        (_json_body(data=["a", "b"]), None, "'a' that is not FP32"),
        (_json_body(datatype="INT64"), None, "0.5 that is not INT64"),
        (
            json.dumps({"inputs": [{"name": "INPUT", "shape": [1], "datatype": "FP32"}]}).encode(),
            None,
            "neither 'data'",
        ),
        (_json_body(), 5000, "Inference-Header-Content-Length is 5000"),
    ],
)
def test_bad_requests_raise_protocol_errors_naming_the_problem(
    body: bytes, header: int | None, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        decode_infer_request(body, header)
    assert info.value.status == 400


def test_wrong_binary_size_is_rejected() -> None:
    array = np.ones((2, 3), np.float32)
    body, header = encode_infer_request([Tensor("INPUT", array)], binary=True)
    assert header is not None
    head = json.loads(body[:header])
    head["inputs"][0]["parameters"]["binary_data_size"] = 20
    new_head = json.dumps(head).encode()
    with pytest.raises(
        ProtocolError, match="binary_data_size 20 but shape \\[2, 3\\] of FP32 needs 24 bytes"
    ):
        decode_infer_request(new_head + body[header:], len(new_head))


def test_truncated_binary_tail_is_rejected() -> None:
    body, header = encode_infer_request([Tensor("INPUT", np.ones((2, 3), np.float32))], binary=True)
    with pytest.raises(ProtocolError, match="needs 24 binary bytes but only 20 follow"):
        decode_infer_request(body[:-4], header)


def test_extra_binary_bytes_are_rejected() -> None:
    body, header = encode_infer_request([Tensor("INPUT", np.ones((2, 3), np.float32))], binary=True)
    with pytest.raises(ProtocolError, match="carries 28 binary bytes but its inputs declare 24"):
        decode_infer_request(body + b"\0\0\0\0", header)


def test_decoded_binary_arrays_are_writable() -> None:
    """torch.from_numpy refuses read-only arrays; the codec must hand out copies."""
    back = _roundtrip_request(np.ones((1, 2), np.float32), binary=True)
    assert back.flags.writeable
