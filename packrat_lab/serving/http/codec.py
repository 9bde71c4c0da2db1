"""Request bodies before the protocol sees them: inflated under a cap, or read as one JSON object.

Pure functions without tornado, so the gRPC front and the tests can call them.
"""

from __future__ import annotations

import zlib
from typing import Any

from packrat_lab.serving.http.protocol import ProtocolError, json_object

__all__ = ["MiB", "inflate", "load_object"]

MiB = 1024 * 1024
_CHUNK = 256 * 1024  # inflate at most this much input per step, so the output check runs often
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def load_object(data: bytes, example: str) -> dict[str, Any]:
    """A request body that must be one JSON object (empty body: {}); ProtocolError naming `example`."""
    return json_object(data or b"{}", example)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per Content-Encoding (gzip, deflate, identity), refused (413) past `limit` bytes.

    Streaming: the output never grows beyond limit + one chunk, whatever the compression ratio.
    """
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return body
    wbits = _ENCODINGS.get(encoding)
    if wbits is None:
        msg = f"Content-Encoding {encoding!r} is not supported; valid: gzip, deflate, identity"
        raise ProtocolError(msg)
    out = bytearray()
    data = memoryview(body)
    pos = 0
    try:
        while pos < len(data):  # gzip members may follow each other, as gzip.decompress accepts
            inflater = zlib.decompressobj(wbits)
            while not inflater.eof:
                if inflater.unconsumed_tail:
                    chunk: bytes | memoryview = inflater.unconsumed_tail
                elif pos < len(data):
                    chunk = data[pos : pos + _CHUNK]
                    pos += len(chunk)
                else:
                    msg = f"request body is truncated {encoding} data; send the whole body or send it uncompressed"
                    raise ProtocolError(msg)
                out += inflater.decompress(chunk, limit + 1 - len(out))
                if len(out) > limit:
                    msg = (
                        f"request body inflates past the {limit / MiB:g} MiB body limit "
                        f"(Content-Encoding {encoding}); send less data per request"
                    )
                    raise ProtocolError(msg, status=413)
            pos -= len(inflater.unused_data)
            if encoding == "deflate" and pos < len(data):
                msg = "request body has bytes after its deflate stream; send one zlib stream"
                raise ProtocolError(msg)
    except zlib.error as exc:
        msg = f"request body is not valid {encoding} data ({exc}); send it uncompressed or fix the encoding"
        raise ProtocolError(msg) from None
    return bytes(out)
