"""On-disk conversion cache: export/convert once per (model content, backend, precision), then load.

Keys hash the model's architecture text, every parameter and buffer, the input shape and dtype,
and the versions of torch and the backend library, so a changed model or upgrade converts anew.
Concurrent processes (pool workers starting together) serialise on a lock file per entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packrat_lab.workloads.backends.names import BackendChoice

if TYPE_CHECKING:
    import torch

__all__ = ["CACHE_ENV", "CachedArtifact", "cache_root", "convert_once", "model_digest"]

CACHE_ENV = "PACKRAT_LAB_CACHE"


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: `explicit`, else $PACKRAT_LAB_CACHE, else ~/.cache/packrat_lab."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "packrat_lab"


def model_digest(
    model: torch.nn.Module, sample_shape: tuple[int, ...], dtype: str, library_version: str = ""
) -> str:
    """A content hash of the model (architecture, weights), its input and the converting library."""
    import torch

    h = hashlib.sha256()
    h.update(f"{torch.__version__}|{library_version}|{sample_shape}|{dtype}|".encode())
    h.update(repr(model).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        data = tensor.detach().contiguous().cpu()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        h.update(data.numpy().tobytes())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class CachedArtifact:
    """A converted model on disk, with what its conversion cost when it was made."""

    path: Path
    convert_s: float
    hit: bool  # True: loaded from an earlier conversion


def convert_once(
    root: Path, choice: BackendChoice, digest: str, convert: Callable[[Path], None]
) -> CachedArtifact:
    """The artifact folder of (choice, digest), running `convert(folder)` only if no earlier run did."""
    backends = root / "backends"
    backends.mkdir(parents=True, exist_ok=True)
    final = backends / f"{choice.key}-{digest}"
    with open(backends / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits for the first's conversion
        meta_file = final / "meta.json"
        if meta_file.exists():
            meta = json.loads(meta_file.read_text())
            return CachedArtifact(final, float(meta.get("convert_s", 0.0)), True)
        work = backends / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        started = time.perf_counter()
        try:
            convert(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        convert_s = time.perf_counter() - started
        (work / "meta.json").write_text(json.dumps({"convert_s": round(convert_s, 4), "backend": choice.key}))
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        return CachedArtifact(final, convert_s, False)
