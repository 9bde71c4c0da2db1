"""Profile: every measurement of one model on one host, saved as JSON or read from CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packrat_lab.errors import ProfileError, ProfileMissingPointError
from packrat_lab.host import fingerprint, fingerprint_differences
from packrat_lab.profiling.corun import CoRunMeasurement
from packrat_lab.profiling.measurement import Measurement
from packrat_lab.settings import DEFAULT, RuntimeSetting, builtin_settings
from packrat_lab.workloads.backends.accuracy import DEFAULT_ACCURACY_TOL, Accuracy

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT", "LatencyGrid", "Profile", "load_profile"]

FORMAT = "packrat-lab-profile/2"  # /2 adds backend and precision per measurement
READABLE_FORMATS = ("packrat-lab-profile/1", FORMAT)
_CSV_EXAMPLE = "threads,batch,latency_ms\\n1,1,12.5"


class HostMismatchWarning(UserWarning):
    """A profile measured on another host (CPU, cores or torch differ) was loaded."""


@dataclass(frozen=True)
class LatencyGrid:
    """Best latency per (threads, batch) over runtime settings and admissible backends, as dense arrays."""

    threads: np.ndarray  # (nt,) sorted thread counts
    batches: np.ndarray  # (nb,) sorted batch sizes
    latency_ms: np.ndarray  # (nt, nb), inf where not measured
    setting: np.ndarray  # (nt, nb) object array of setting names ('' where not measured)
    backend: np.ndarray | None = None  # (nt, nb) object array of backend keys ('' where not measured)

    def backend_at(self, i: int, j: int) -> str:
        """Backend key that won at (threads[i], batches[j]); 'eager' for grids without backends."""
        if self.backend is None:
            return "eager"
        return str(self.backend[i, j]) or "eager"

    def lookup(self, threads: int, batch: int) -> tuple[float, str]:
        """Latency and setting of one point; raises ProfileMissingPointError if absent."""
        ti = np.searchsorted(self.threads, threads)
        bi = np.searchsorted(self.batches, batch)
        if (
            ti >= len(self.threads)
            or bi >= len(self.batches)
            or self.threads[ti] != threads
            or self.batches[bi] != batch
            or not math.isfinite(self.latency_ms[ti, bi])
        ):
            msg = (
                f"profile has no point threads={threads} batch={batch}; measured threads "
                f"{self.threads.tolist()} and batches {self.batches.tolist()}; example: "
                f"profile again with --batch {batch}"
            )
            raise ProfileMissingPointError(msg)
        return float(self.latency_ms[ti, bi]), str(self.setting[ti, bi])


@dataclass
class Profile:
    """L[t][b] of one model on one host, with raw samples per runtime setting."""

    model: str
    measurements: list[Measurement] = field(default_factory=list)
    settings: dict[str, RuntimeSetting] = field(default_factory=builtin_settings)
    host: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    corun: dict[str, CoRunMeasurement] = field(default_factory=dict)  # config -> measured together

    # ---- queries -------------------------------------------------------------------------
    @property
    def threads(self) -> list[int]:
        """Thread counts measured, sorted."""
        return sorted({m.threads for m in self.measurements})

    @property
    def batches(self) -> list[int]:
        """Batch sizes measured, sorted."""
        return sorted({m.batch for m in self.measurements})

    @property
    def max_threads(self) -> int:
        """Largest thread count measured (0 when empty)."""
        return max(self.threads, default=0)

    def points(self, threads: int, batch: int) -> list[Measurement]:
        """Every admissible measurement at (threads, batch), one per runtime setting and backend."""
        return [m for m in self.usable_measurements if m.threads == threads and m.batch == batch]

    # ---- backends and the accuracy guard --------------------------------------------------
    @property
    def accuracy_tol(self) -> float:
        """Relative error against eager fp32 beyond which a backend/precision is excluded."""
        return float(self.meta.get("accuracy_tol", DEFAULT_ACCURACY_TOL))

    @accuracy_tol.setter
    def accuracy_tol(self, value: float) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            msg = f"accuracy_tol must be a non-negative relative error, got {value!r}; example: accuracy_tol=0.01"
            raise ValueError(msg)
        self.meta["accuracy_tol"] = float(value)

    @property
    def backends(self) -> list[str]:
        """Backend keys measured ('eager', 'onnxruntime', 'openvino-bf16'), sorted."""
        return sorted({m.backend_key for m in self.measurements})

    def backend_accuracy(self) -> dict[str, Accuracy]:
        """Worst error against eager fp32 per backend key (keys never checked are absent)."""
        found: dict[str, list[Accuracy]] = {}
        for m in self.measurements:
            if m.accuracy is not None:
                found.setdefault(m.backend_key, []).append(m.accuracy)
        return {k: Accuracy.worst(v) for k, v in found.items()}

    def excluded_backends(self) -> dict[str, str]:
        """Backend keys left out of planning, with why: failed, beyond tolerance, or unchecked."""
        out = {str(k): f"failed: {v}" for k, v in dict(self.meta.get("backend_failures", {})).items()}
        accuracy = self.backend_accuracy()
        for key in self.backends:
            if key == "eager":
                continue
            found = accuracy.get(key)
            if found is None:
                out[key] = "no accuracy check against eager fp32"
            elif not found.within(self.accuracy_tol):
                out[key] = f"beyond accuracy_tol {self.accuracy_tol:g} ({found.describe()})"
        return out

    def admissible(self, m: Measurement) -> bool:
        """Eager fp32 always; another backend only when checked against it and within tolerance."""
        if m.backend_key == "eager":
            return True
        return m.accuracy is not None and m.accuracy.within(self.accuracy_tol)

    @property
    def usable_measurements(self) -> list[Measurement]:
        """Measurements planning may use (the accuracy guard applied)."""
        return [m for m in self.measurements if self.admissible(m)]

    def only_backend(self, key: str) -> Profile:
        """The same profile restricted to one backend key (e.g. 'eager' for the eager-fat baseline)."""
        kept = [m for m in self.measurements if m.backend_key == key]
        return Profile(self.model, kept, dict(self.settings), self.host, dict(self.meta), dict(self.corun))

    def best(self, threads: int, batch: int, statistic: str = "median") -> Measurement:
        """The fastest admissible (setting, backend) measurement at (threads, batch)."""
        found = self.points(threads, batch)
        if not found:
            self.grid(statistic).lookup(threads, batch)  # raises the helpful error
        return min(found, key=lambda m: m.statistic(statistic))

    def grid(self, statistic: str = "median") -> LatencyGrid:
        """Dense best-over-(setting, admissible backend) table for the optimizer and plots."""
        ts = np.asarray(self.threads, dtype=int)
        bs = np.asarray(self.batches, dtype=int)
        lat = np.full((len(ts), len(bs)), np.inf)
        names = np.full((len(ts), len(bs)), "", dtype=object)
        backends = np.full((len(ts), len(bs)), "", dtype=object)
        t_index = {int(t): i for i, t in enumerate(ts)}
        b_index = {int(b): j for j, b in enumerate(bs)}
        for m in self.usable_measurements:
            i, j = t_index[m.threads], b_index[m.batch]
            value = m.statistic(statistic)
            if value < lat[i, j]:
                lat[i, j] = value
                names[i, j] = m.setting
                backends[i, j] = m.backend_key
        return LatencyGrid(ts, bs, lat, names, backends)

    @property
    def noisy_points(self) -> list[Measurement]:
        """Measurements whose median is not known to the target precision."""
        return [m for m in self.measurements if m.noisy]

    # ---- building ------------------------------------------------------------------------
    def add(self, measurement: Measurement) -> None:
        """Add or replace the measurement of one (threads, batch, setting, backend) point."""
        key = measurement.key
        self.measurements = [m for m in self.measurements if m.key != key] + [measurement]

    def record_corun(self, measurement: CoRunMeasurement) -> None:
        """Cache what a configuration measured with its instances together (replacing an older one)."""
        self.corun[measurement.config] = measurement

    def coruns(self, batch: int) -> list[CoRunMeasurement]:
        """Co-run measurements of configurations serving batch B, fastest first."""
        return sorted((m for m in self.corun.values() if m.batch == batch), key=lambda m: m.median_ms)

    def merged(self, other: Profile) -> Profile:
        """A profile holding both profiles' points (other's win on a clash)."""
        out = Profile(
            self.model,
            list(self.measurements),
            {**self.settings, **other.settings},
            self.host,
            dict(self.meta),
        )
        for m in other.measurements:
            out.add(m)
        out.corun = {**self.corun, **other.corun}
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per measurement with its statistics (pandas imported lazily)."""
        import pandas as pd

        rows = [
            {
                "threads": m.threads,
                "batch": m.batch,
                "setting": m.setting,
                "backend": m.backend,
                "precision": m.precision,
                "max_rel_err": m.accuracy.max_rel if m.accuracy is not None else None,
                "admissible": self.admissible(m),
                "median_ms": m.median,
                "mean_ms": m.mean,
                "p90_ms": m.p90,
                "p99_ms": m.p99,
                "iqr_ms": m.iqr,
                "n": m.n,
                "noisy": m.noisy,
                "stop_reason": m.stop_reason,
            }
            for m in sorted(self.measurements, key=lambda m: m.key)
        ]
        return pd.DataFrame(rows)

    # ---- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with format tag and host fingerprint."""
        return {
            "format": FORMAT,
            "model": self.model,
            "host": self.host,
            "settings": {k: v.to_dict() for k, v in self.settings.items()},
            "meta": self.meta,
            "measurements": [m.to_dict() for m in self.measurements],
            "corun": [m.to_dict() for m in self.corun.values()],
        }

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON (written to a temp file, then renamed)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "profile") -> Profile:
        """Inverse of to_dict, with errors that name the file."""
        if data.get("format") not in READABLE_FORMATS:
            msg = f"{source}: format {data.get('format')!r} is not {FORMAT!r}; save profiles with Profile.save or `packrat-lab profile -o FILE`"
            raise ProfileError(msg)
        try:
            settings = {k: RuntimeSetting.from_dict(v) for k, v in data.get("settings", {}).items()}
            measurements = [Measurement.from_dict(m) for m in data["measurements"]]
            corun = [CoRunMeasurement.from_dict(m) for m in data.get("corun", [])]
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{source}: malformed measurement ({exc}); re-profile or fix the file"
            raise ProfileError(msg) from exc
        out = cls(
            str(data.get("model", "unknown")),
            measurements,
            settings or builtin_settings(),
            data.get("host"),
            dict(data.get("meta", {})),
        )
        out.corun = {m.config: m for m in corun}
        return out

    @classmethod
    def from_csv_text(cls, text: str, model: str = "csv", source: str = "profile") -> Profile:
        """Read `threads,batch,latency_ms` rows (e.g. the Packrat paper's published profiles)."""
        reader = csv.DictReader(io.StringIO(text))
        needed = {"threads", "batch", "latency_ms"}
        if reader.fieldnames is None or not needed <= set(reader.fieldnames):
            msg = f"{source}: CSV header {reader.fieldnames} lacks columns threads,batch,latency_ms; example: {_CSV_EXAMPLE}"
            raise ProfileError(msg)
        measurements = []
        for line, row in enumerate(reader, start=2):
            try:
                t, b, lat = int(row["threads"]), int(row["batch"]), float(row["latency_ms"])
            except (TypeError, ValueError) as exc:
                msg = f"{source}: line {line} {row!r} is not 'threads,batch,latency_ms' numbers; example: {_CSV_EXAMPLE}"
                raise ProfileError(msg) from exc
            if t < 1 or b < 1 or not (lat > 0 and math.isfinite(lat)):
                msg = f"{source}: line {line} has threads={t} batch={b} latency_ms={lat}; all must be positive; example: {_CSV_EXAMPLE}"
                raise ProfileError(msg)
            setting = row.get("setting") or DEFAULT.name
            measurements.append(Measurement(t, b, setting, (lat,), stop_reason="summary"))
        if not measurements:
            msg = f"{source}: CSV has a header but no rows; example: {_CSV_EXAMPLE}"
            raise ProfileError(msg)
        return cls(model, measurements, {DEFAULT.name: DEFAULT}, None, {"source": source})


def load_profile(path: str | Path, *, check_host: bool = True) -> Profile:
    """Load a profile saved by packrat_lab (JSON) or a `threads,batch,latency_ms` CSV."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        msg = f"cannot read profile {str(path)!r}: {exc.strerror}; example: packrat-lab profile mlp -o mlp.packrat.json"
        raise ProfileError(msg) from exc
    if not text.strip():
        msg = f"profile {str(path)!r} is empty; example: packrat-lab profile mlp -o mlp.packrat.json"
        raise ProfileError(msg)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"profile {str(path)!r} is not valid JSON (truncated?) at line {exc.lineno}: {exc.msg}"
            raise ProfileError(msg) from exc
        profile = Profile.from_dict(data, source=str(path))
    else:
        model = path.stem.removeprefix("packrat-paper-")
        profile = Profile.from_csv_text(text, model=model, source=str(path))
    if check_host and profile.host is not None:
        differences = fingerprint_differences(profile.host, fingerprint())
        if differences:
            warnings.warn(
                f"profile {path.name} was measured on another host ({'; '.join(differences)}); "
                "its latencies may not hold here — re-profile for a trustworthy plan",
                HostMismatchWarning,
                stacklevel=2,
            )
    return profile


def profile_from_latencies(
    model: str, latencies: Mapping[tuple[int, int], float] | Iterable[tuple[int, int, float]]
) -> Profile:
    """A synthetic profile from {(threads, batch): ms}, for tests and what-if planning."""
    items: Sequence[tuple[int, int, float]]
    if isinstance(latencies, Mapping):
        items = [(t, b, v) for (t, b), v in latencies.items()]
    else:
        items = list(latencies)
    return Profile(
        model,
        [Measurement(t, b, DEFAULT.name, (float(v),), stop_reason="summary") for t, b, v in items],
        {DEFAULT.name: DEFAULT},
    )
