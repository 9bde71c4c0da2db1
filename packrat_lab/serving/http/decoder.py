"""Decode big JSON requests in a helper process: json.loads holds the GIL for the whole parse.

A 15 MB JSON body takes a few hundred ms of json.loads and NumPy conversion, all under the GIL,
which pauses the event loop thread just as much from a worker thread. Bodies whose JSON part is
above `threshold` bytes are therefore decoded by one spawned process (no torch, started on first
use) and only the arrays come back; smaller ones are decoded in the calling thread, where a
process round trip would cost more than it saves.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from concurrent.futures.process import BrokenProcessPool

from packrat_lab.serving.http.protocol import InferRequest, decode_infer_request

__all__ = ["PROCESS_THRESHOLD", "JsonDecoder"]

PROCESS_THRESHOLD = 1024 * 1024


class JsonDecoder:
    """`decode(body, header_length)` like decode_infer_request, big JSON parts in a helper process."""

    def __init__(self, threshold: int = PROCESS_THRESHOLD) -> None:
        self.threshold = threshold
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def decode(self, body: bytes, header_length: int | None) -> InferRequest:
        """The decoded request (blocking; call from a worker thread, never the event loop)."""
        json_bytes = len(body) if header_length is None else max(0, min(header_length, len(body)))
        if json_bytes <= self.threshold:  # binary tensors: a small JSON header, then one memcpy each
            return decode_infer_request(body, header_length)
        pool = self._helper()
        if pool is None:
            return decode_infer_request(body, header_length)
        try:
            return pool.submit(decode_infer_request, body, header_length).result()
        except BrokenProcessPool:  # the helper died (killed, out of memory): a new one next time
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return decode_infer_request(body, header_length)

    def _helper(self) -> concurrent.futures.ProcessPoolExecutor | None:
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool

    def close(self) -> None:
        """Stop the helper process (requests decode in-thread afterwards)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
