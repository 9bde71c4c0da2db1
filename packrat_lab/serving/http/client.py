"""A minimal Open Inference Protocol v2 client on http.client (keep-alive, binary tensors).

The load generator uses it instead of tritonclient: tritonclient is only a test dependency, and
a stdlib client with one persistent connection per sender thread keeps client overhead small.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from packrat_lab.serving.http.protocol import (
    DATATYPES,
    HEADER_LENGTH,
    Tensor,
    decode_infer_response,
    encode_infer_request,
)

__all__ = ["HTTPStatusError", "V2Client", "check_local_url"]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class HTTPStatusError(RuntimeError):
    """The server answered with an error status; the message carries its `error` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def check_local_url(url: str, allow_remote: bool = False) -> tuple[str, int, str]:
    """(host, port, path) of an http URL; refuses hosts other than loopback unless allow_remote."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        msg = f"URL {url!r} is not an http://HOST:PORT URL; example: http://127.0.0.1:8000"
        raise ValueError(msg)
    host = parts.hostname
    if not allow_remote:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host.lower() in _LOCAL_NAMES
        if not local:
            msg = f"refusing to send traffic to {host!r}: only 127.0.0.1/localhost unless --allow-remote"
            raise ValueError(msg)
    return host, parts.port or 80, parts.path.rstrip("/")


class V2Client:
    """One keep-alive connection to a v2 server (not thread-safe: one client per thread)."""

    def __init__(
        self, url: str, *, timeout: float = 30.0, allow_remote: bool = False, token: str | None = None
    ):
        self.host, self.port, self.base = check_local_url(url, allow_remote)
        self.timeout = timeout
        self.token = token
        self._conn: http.client.HTTPConnection | None = None

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):  # one retry if a kept-alive connection was closed by the server
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, self.base + path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except (TimeoutError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
                continue
            return response, data
        raise AssertionError("unreachable")

    def get_json(self, path: str) -> Any:
        """GET a JSON route, raising HTTPStatusError on an error status."""
        response, data = self._request("GET", path)
        return _json_or_raise(response.status, data)

    def send_json(self, method: str, path: str, body: Any) -> Any:
        """PUT/POST a JSON body to a route."""
        response, data = self._request(
            method, path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        return _json_or_raise(response.status, data)

    def model_name(self) -> str:
        """The first model the server lists (POST /v2/repository/index)."""
        response, data = self._request("POST", "/v2/repository/index", b"{}")
        index = _json_or_raise(response.status, data)
        if not index:
            msg = f"server at {self.host}:{self.port} lists no model; give the model name in the URL"
            raise ValueError(msg)
        return str(index[0]["name"])

    def model_input(self, model: str) -> tuple[str, str, tuple[int, ...]]:
        """(input name, datatype, per-sample shape) from model metadata."""
        meta = self.get_json(f"/v2/models/{model}")
        first = meta["inputs"][0]
        return str(first["name"]), str(first["datatype"]), tuple(int(d) for d in first["shape"][1:])

    def infer(
        self, model: str, name: str, array: np.ndarray, *, binary: bool = True
    ) -> dict[str, np.ndarray]:
        """One inference; outputs by name."""
        body, header_length = encode_infer_request([Tensor(name, array)], binary=binary)
        headers = {
            "Content-Type": "application/octet-stream" if header_length is not None else "application/json"
        }
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
        response, data = self._request("POST", f"/v2/models/{model}/infer", body, headers)
        if response.status != 200:
            _json_or_raise(response.status, data)
        length = response.getheader(HEADER_LENGTH)
        return decode_infer_response(data, int(length) if length is not None else None)

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _json_or_raise(status: int, data: bytes) -> Any:
    try:
        obj = json.loads(data) if data else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        obj = None
    if status >= 400:
        message = obj.get("error") if isinstance(obj, dict) else data[:200].decode(errors="replace")
        raise HTTPStatusError(status, str(message))
    return obj


def random_input(
    datatype: str, shape: tuple[int, ...], rng: np.random.Generator, high: int = 2
) -> np.ndarray:
    """A random tensor of a v2 datatype (integers in [0, high) for token ids)."""
    dtype = DATATYPES[datatype]
    if dtype.kind in "iu":
        return rng.integers(0, high, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)
