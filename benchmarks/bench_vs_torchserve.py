"""`packrat-lab serve` against TorchServe 0.12 on the same TorchScript file, with the same load generator.

Usage: python benchmarks/bench_vs_torchserve.py [--models tiny-cnn,resnet50] [--plan tiny-cnn=2x1x1]
       [--duration 6] [--live-duration 15] [--rounds 2] [--clients 8] [--rate-fractions 0.25,0.7]
       [--out benchmarks/results/vs-torchserve.md]

A benchmark, not a test. TorchServe runs in its own virtual environment, made on first use under
~/.cache/packrat_lab/torchserve-venv (torch==2.13.0 torchserve==0.12.0 torch-model-archiver pyyaml
numpy). For each model the zoo builds it (random weights), `torch.jit.trace` writes one TorchScript
file, TorchServe serves it through `torchserve_handler.py` (raw float32 body in, raw output out) and
`packrat-lab serve` serves the same file (OIP v2, binary tensors) with the optimizer's plan from a
quick profile (or --plan). One client loop drives both: only the request builder differs.

Back-to-back pairs, order flipped each time: our server stays up while TorchServe is started once per
config and round (TorchServe allows one instance per machine): `default` (its defaults) and `best`
(cpu_launcher_enable=true, workers = cores, so one pinned 1-thread worker per core, batch 1).
Rows: saturation (closed loop, --clients concurrent), p50/p99 at fixed open-loop rates (fractions
of our measured saturation), the servers' CPU per request at saturation (front end: our serve process,
TorchServe's JVM; whole server: its whole process tree, workers included, from /proc), and a live change
(TorchServe: scale workers through its management API; ours: PUT /packrat/plan) with failed
requests, longest completion gap and p99 around the change.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import queue
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostinfo import host_description

from packrat_lab.host import detect_host
from packrat_lab.loadgen import Arrivals, pace

HERE = Path(__file__).resolve().parent
TS_PACKAGES = ["torch==2.13.0", "torchserve==0.12.0", "torch-model-archiver", "pyyaml", "numpy"]
TS_PID_FILE = Path(tempfile.gettempdir()) / ".model_server.pid"


# ---------------------------------------------------------------- one client loop for both servers


@dataclass(frozen=True)
class Target:
    """How to send one inference to a server: the only part that differs between the two."""

    label: str
    port: int
    path: str
    headers: dict[str, str]
    bodies: tuple[bytes, ...]


@dataclass
class Run:
    """Completed requests of one run: (due, done, ok) per request, perf_counter seconds."""

    start: float
    end: float
    records: list[tuple[float, float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def latencies_ms(self, lo: float = -math.inf, hi: float = math.inf) -> list[float]:
        return [(d - s) * 1e3 for s, d, ok in self.records if ok and lo <= s <= hi]

    def failed(self) -> int:
        return sum(1 for *_, ok in self.records if not ok)

    def ok(self) -> int:
        return sum(1 for *_, ok in self.records if ok)

    def throughput(self) -> float:
        ok = sum(1 for *_, ok in self.records if ok)
        return ok / (self.end - self.start)

    def pct(self, q: float, lo: float = -math.inf, hi: float = math.inf) -> float:
        lat = self.latencies_ms(lo, hi)
        return float(np.percentile(lat, q)) if lat else math.nan

    def longest_gap_s(self, lo: float, hi: float) -> float:
        """Longest time without a successful completion inside [lo, hi]."""
        done = sorted(d for _, d, ok in self.records if ok and lo <= d <= hi)
        edges = [lo, *done, hi]
        return max(b - a for a, b in itertools.pairwise(edges))


class _Conn:
    """One keep-alive connection per client thread; reconnects after an error."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target, self.timeout = target, timeout
        self.conn: http.client.HTTPConnection | None = None

    def send(self, i: int) -> str | None:
        """Send request i; None when answered 200, else a short error."""
        t = self.target
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", t.port, timeout=self.timeout)
            self.conn.request("POST", t.path, body=t.bodies[i % len(t.bodies)], headers=t.headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return f"{type(exc).__name__}: {exc}"
        if resp.status != 200:
            return f"HTTP {resp.status}: {data[:120]!r}"
        return None


def closed_loop(target: Target, clients: int, duration_s: float, timeout: float = 60.0) -> Run:
    """`clients` threads each send back to back for duration_s: throughput at saturation."""
    run = Run(time.perf_counter(), 0.0)
    deadline = run.start + duration_s
    lock = threading.Lock()

    def client(k: int) -> None:
        conn, i = _Conn(target, timeout), k
        while (sent := time.perf_counter()) < deadline:
            err = conn.send(i)
            with lock:
                run.records.append((sent, time.perf_counter(), err is None))
                if err and len(run.errors) < 5:
                    run.errors.append(err)
            i += clients

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(duration_s + timeout)
    run.end = max([deadline, *(d for _, d, _ in run.records)])
    return run


def open_loop(
    target: Target,
    rate: float,
    duration_s: float,
    *,
    concurrency: int = 64,
    timeout: float = 30.0,
    drain_s: float = 5.0,
    at: tuple[float, Callable[[], None]] | None = None,
) -> Run:
    """Poisson arrivals at `rate` (packrat_lab.loadgen's Arrivals and pace); latency from the due time.

    `at=(t, fn)` runs fn in its own thread t seconds into the run (the live change). Requests still
    queued drain_s after the last arrival are counted as failed, not sent.
    """
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    run = Run(time.perf_counter(), 0.0)
    lock = threading.Lock()

    drain_deadline = run.start + duration_s + drain_s  # an overloaded server must not stretch the run

    def worker() -> None:
        conn = _Conn(target, timeout)
        while (job := jobs.get()) is not None:
            i, due = job
            late = time.perf_counter() > drain_deadline
            err = f"not sent: still queued {drain_s:g} s after the run" if late else conn.send(i)
            with lock:
                run.records.append((due, time.perf_counter(), err is None))
                if err and len(run.errors) < 5:
                    run.errors.append(err)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for th in threads:
        th.start()
    changer = None
    if at is not None:
        delay, fn = at
        changer = threading.Timer(delay, fn)
        changer.start()
    pace(Arrivals(rate, seed=1), lambda i, due: jobs.put((i, due)), threading.Event(), until_s=duration_s)
    for _ in threads:
        jobs.put(None)
    for th in threads:
        th.join(timeout)
    if changer is not None:
        changer.join(timeout)
    run.end = time.perf_counter()
    return run


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_send(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen[bytes]) -> float:
    """Poll check() until true; seconds waited. Raises if the process died or time ran out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            msg = f"{what}: process exited with {proc.returncode} before it was ready"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError, http.client.HTTPException):
            if check():
                return time.perf_counter() - start
        time.sleep(0.25)
    msg = f"{what}: not ready after {timeout:g} s"
    raise RuntimeError(msg)


def tree_cpu_s(root: int, front: Callable[[int, str], bool]) -> tuple[float, float]:
    """CPU seconds used so far by a server's process tree: (front end, all of it).

    Linux /proc: every process descended from `root` by parent links (a launcher that calls setsid
    for its workers still counts); `front(pid, comm)` picks the front-end process(es). Processes that
    ended are not counted.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        pid = int(entry)
        parent[pid] = int(fields[1])
        used[pid] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    front_s = total_s = 0.0
    for pid, (comm, seconds) in used.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor != root:
            continue
        total_s += seconds
        if front(pid, comm):
            front_s += seconds
    return front_s, total_s


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # TorchServe's workers too (same group)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_pid_file() -> None:
    """TorchServe refuses to start while its pid file names a live process; remove a dead one's."""
    if not TS_PID_FILE.exists():
        return
    try:
        pid = int(TS_PID_FILE.read_text().strip() or "0")
    except ValueError:
        pid = 0
    if pid and pid_alive(pid):
        msg = f"a TorchServe (pid {pid}, {TS_PID_FILE}) is already running; stop it with `torchserve --stop`"
        raise RuntimeError(msg)
    TS_PID_FILE.unlink()


def ensure_venv(path: Path) -> Path:
    """TorchServe's own environment, made once and reused; returns its bin folder."""
    bin_dir = path / "bin"
    if (bin_dir / "torchserve").exists() and (bin_dir / "torch-model-archiver").exists():
        return bin_dir
    print(f"creating TorchServe's environment in {path} (once) ...", flush=True)
    venv.create(path, with_pip=True)
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", *TS_PACKAGES], check=True)
    return bin_dir


# ---------------------------------------------------------------- the model and the two servers


@dataclass(frozen=True)
class ModelFiles:
    name: str
    shape: tuple[int, ...]
    pt: Path
    store: Path
    out_shape: tuple[int, ...]


def make_model(name: str, work: Path, ts_bin: Path) -> ModelFiles:
    """Trace the zoo model once to a TorchScript file and archive that same file for TorchServe."""
    import torch

    from packrat_lab.workloads.registry import get_workload

    workload = get_workload(name)
    if workload.dtype != "float32":
        msg = (
            f"model {name!r} takes {workload.dtype} input; this benchmark sends float32 (tiny-cnn, resnet50)"
        )
        raise ValueError(msg)
    model = workload.build()
    example = workload.example_input(1)
    with torch.inference_mode():
        traced = torch.jit.trace(model, example, check_trace=False)  # type: ignore[no-untyped-call]
        out = traced(example)
    out_t = out[0] if isinstance(out, (tuple, list)) else out
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    pt = folder / f"{name}.pt"
    traced.save(str(pt))
    (folder / "shape.json").write_text(json.dumps({"sample_shape": list(workload.sample_shape)}))
    store = folder / "store"
    store.mkdir(exist_ok=True)
    subprocess.run(
        [
            str(ts_bin / "torch-model-archiver"),
            "--model-name", name, "--version", "1.0", "--serialized-file", str(pt),
            "--handler", str(HERE / "torchserve_handler.py"), "--extra-files", str(folder / "shape.json"),
            "--export-path", str(store), "--force",
        ],
        check=True,
    )  # fmt: skip
    return ModelFiles(name, tuple(workload.sample_shape), pt, store, tuple(out_t.shape[1:]))


def raw_bodies(model: ModelFiles, n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, *model.shape), dtype=np.float32) for _ in range(n)]


class TorchServe:
    """One TorchServe instance for one model and config ('default' or 'best'); a context manager."""

    def __init__(self, model: ModelFiles, config: str, ts_bin: Path, cores: int, work: Path) -> None:
        self.model, self.config, self.ts_bin, self.cores = model, config, ts_bin, cores
        self.dir = Path(tempfile.mkdtemp(prefix=f"ts-{config}-", dir=work))
        self.port, self.mgmt, self.metrics = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s = math.nan
        self.workers = 0

    def settings(self) -> dict[str, str]:
        base = {
            "inference_address": f"http://127.0.0.1:{self.port}",
            "management_address": f"http://127.0.0.1:{self.mgmt}",
            "metrics_address": f"http://127.0.0.1:{self.metrics}",
            "disable_system_metrics": "true",
        }
        if self.config == "best":
            base |= {"cpu_launcher_enable": "true", "default_workers_per_model": str(self.cores)}
        return base

    def __enter__(self) -> Self:
        remove_stale_pid_file()
        cfg = self.dir / "config.properties"
        cfg.write_text("".join(f"{k}={v}\n" for k, v in self.settings().items()))
        env = dict(os.environ, PATH=f"{self.ts_bin}:{os.environ.get('PATH', '')}", LOG_LOCATION=str(self.dir))
        env.pop("PYTHONPATH", None)  # TorchServe's workers must not import our tree's packages
        cmd = [
            str(self.ts_bin / "torchserve"), "--start", "--foreground", "--ncs",
            "--model-store", str(self.model.store), "--models", f"{self.model.name}={self.model.name}.mar",
            "--ts-config", str(cfg), "--disable-token-auth", "--enable-model-api",
        ]  # fmt: skip
        log = open(self.dir / "torchserve.log", "wb")  # closed with the process
        self.proc = subprocess.Popen(
            cmd, cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.start_s = wait_until(self.ready, f"TorchServe {self.config}", 300, self.proc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of its front end (the JVM) and of all its processes (JVM, workers, launcher)."""
        assert self.proc is not None
        return tree_cpu_s(self.proc.pid, lambda pid, comm: comm == "java")

    def describe(self) -> list[dict[str, Any]]:
        status, body = http_get(self.mgmt, f"/models/{self.model.name}")
        return list(json.loads(body)[0]["workers"]) if status == 200 else []

    def ready(self) -> bool:
        workers = self.describe()
        self.workers = len(workers)
        return (
            bool(workers)
            and all(w.get("status") == "READY" for w in workers)
            and http_get(self.port, "/ping")[0] == 200
        )

    def target(self, model: ModelFiles) -> Target:
        bodies = tuple(a.tobytes() for a in raw_bodies(model))
        return Target(
            f"TorchServe {self.config}", self.port, f"/predictions/{model.name}",
            {"Content-Type": "application/octet-stream"}, bodies,
        )  # fmt: skip

    def scale(self, workers: int) -> tuple[int, float, str]:
        """Scale through the management API (synchronous); status, seconds, answer."""
        t0 = time.perf_counter()
        status, body = http_send(
            self.mgmt,
            "PUT",
            f"/models/{self.model.name}?min_worker={workers}&max_worker={workers}&synchronous=true",
        )
        return status, time.perf_counter() - t0, body[:160].decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc)
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(TS_PID_FILE.read_text().strip() or "0")
            deadline = time.perf_counter() + 20
            while pid and pid_alive(pid) and time.perf_counter() < deadline:  # its JVM exits last
                time.sleep(0.2)
            if not pid or not pid_alive(pid):
                TS_PID_FILE.unlink()


class Ours:
    """`packrat-lab serve` on the same TorchScript file with a plan; a context manager."""

    def __init__(self, model: ModelFiles, plan: str, work: Path, queue_delay_ms: float) -> None:
        self.model, self.plan, self.work, self.queue_delay_ms = model, plan, work, queue_delay_ms
        self.port = free_port()
        self.token = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s = math.nan
        self.log = work / f"ours-{model.name}.log"

    def command(self) -> list[str]:
        shape = ",".join(map(str, self.model.shape))
        return [
            sys.executable, "-m", "packrat_lab.cli", "serve", str(self.model.pt), "--sample-shape", shape,
            "--plan", self.plan, "--port", str(self.port), "--max-queue-delay-ms", f"{self.queue_delay_ms:g}",
        ]  # fmt: skip

    def __enter__(self) -> Self:
        env = dict(os.environ, PACKRAT_LAB_TOKEN=self.token, TQDM_DISABLE="1")
        log = open(self.log, "wb")  # closed with the process
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.start_s = wait_until(
                lambda: http_get(self.port, "/v2/health/ready")[0] == 200, "packrat-lab serve", 300, self.proc
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def target(self, model: ModelFiles) -> Target:
        from packrat_lab.serving.http.protocol import HEADER_LENGTH, Tensor, encode_infer_request

        meta = json.loads(http_get(self.port, "/v2/models/" + self.model.pt.stem)[1])
        name = meta["inputs"][0]["name"]
        bodies, length = [], 0
        for array in raw_bodies(model):
            body, header_length = encode_infer_request([Tensor(name, array)], binary=True)
            bodies.append(body)
            length = int(header_length or 0)
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)}
        return Target(
            f"packrat {self.plan}", self.port, f"/v2/models/{meta['name']}/infer", headers, tuple(bodies)
        )

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of its front end (the serve process) and of all its processes (with the workers)."""
        assert self.proc is not None
        pid = self.proc.pid
        return tree_cpu_s(pid, lambda p, comm: p == pid)

    def switch(self, plan: str) -> tuple[int, float, str]:
        """PUT /packrat/plan (waits for the switch); status, seconds, answer."""
        t0 = time.perf_counter()
        status, body = http_send(
            self.port, "PUT", "/packrat/plan", json.dumps({"plan": plan}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        return status, time.perf_counter() - t0, body[:160].decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc)


def pick_plan(model: ModelFiles, cores: int, args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """The plan to serve: --plan, else the optimizer's for B = cores on a quick profile; (plan, how)."""
    given = dict(item.split("=", 1) for item in args.plan.split(",")) if args.plan else {}
    if model.name in given:
        return given[model.name], "given by --plan"
    from packrat_lab.optimizer import optimize
    from packrat_lab.profiling.table import load_profile

    out = work / f"{model.name}.packrat.json"
    batches = ",".join(str(b) for b in (1, 2, 4, 8, 16) if b <= cores)
    cmd = [
        sys.executable, "-m", "packrat_lab.cli", "profile", str(model.pt),
        "--sample-shape", ",".join(map(str, model.shape)), "--cores", str(cores), "--batch", batches,
        "--point-time", f"{args.point_time:g}", "--time-budget", f"{args.profile_budget:g}", "-o", str(out),
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=dict(os.environ, TQDM_DISABLE="1"), stdout=subprocess.DEVNULL)
    plan = optimize(load_profile(out), cores, cores)
    return (
        plan.text,
        f"optimizer, B={cores}, quick profile ({time.perf_counter() - t0:.0f} s: {shlex.join(cmd[3:])})",
    )


# ---------------------------------------------------------------- the comparison


def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 and math.isfinite(a) and math.isfinite(b) else "n/a"


def pairs(round_: int, k: int) -> Iterator[int]:
    """Order of (ours, theirs) in pair k of a round: flip every time."""
    yield from ((0, 1) if (round_ + k) % 2 == 0 else (1, 0))


def alternative_plan(plan: str, cores: int) -> str:
    """The plan a live change switches to: the other extreme of the same cores.

    A fat instance gets the passive wait policy: default OpenMP spinning collapses on a busy host
    (FIELD-NOTES), and the row is about the switch, not about the destination's speed.
    """
    thin, fat = f"{cores}x1x1", f"1x{cores}x1"
    return f"{fat}@passive" if plan.split("@")[0] != fat else thin


def bench_model(name: str, args: argparse.Namespace, ts_bin: Path, cores: int, work: Path) -> list[str]:
    """All rows for one model, as Markdown lines."""
    print(f"\n== {name}", flush=True)
    model = make_model(name, work, ts_bin)
    plan, how = pick_plan(model, cores, args, work)
    print(f"our plan: {plan} ({how})", flush=True)
    sat: dict[str, list[tuple[float, float, float, float]]] = {}  # config -> (ours, theirs, ...) per pair
    lat: dict[tuple[str, float], list[tuple[Run, Run]]] = {}
    live: list[dict[str, Any]] = []
    cpu_per_request: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {}
    starts: dict[str, list[float]] = {}
    rates: list[float] = []
    with Ours(model, plan, work, args.max_queue_delay_ms) as ours:
        starts.setdefault("packrat", []).append(ours.start_s)
        our_target = ours.target(model)
        closed_loop(our_target, args.clients, min(2.0, args.duration))  # warm-up
        calib = closed_loop(our_target, args.clients, args.duration)
        rates = [round(f * calib.throughput(), 2) for f in args.rate_fractions]
        print(f"calibration: ours {calib.throughput():.2f} req/s -> rates {rates}", flush=True)
        for r in range(args.rounds):
            for config in ("default", "best") if r % 2 == 0 else ("best", "default"):
                with TorchServe(model, config, ts_bin, cores, work) as ts:
                    starts.setdefault(f"TorchServe {config}", []).append(ts.start_s)
                    print(
                        f"round {r + 1}: TorchServe {config} up in {ts.start_s:.1f} s ({ts.workers} workers)",
                        flush=True,
                    )
                    their_target = ts.target(model)
                    closed_loop(their_target, args.clients, min(2.0, args.duration))  # warm-up
                    pair: list[Run] = [Run(0, 1), Run(0, 1)]
                    cpu: list[tuple[float, float]] = [(0.0, 0.0), (0.0, 0.0)]
                    for side in pairs(r, 0):
                        server = (ours, ts)[side]
                        before = server.cpu_s()
                        pair[side] = closed_loop(
                            (our_target, their_target)[side], args.clients, args.duration
                        )
                        after, n = server.cpu_s(), max(1, pair[side].ok())
                        cpu[side] = ((after[0] - before[0]) * 1e3 / n, (after[1] - before[1]) * 1e3 / n)
                    sat.setdefault(config, []).append(
                        (pair[0].throughput(), pair[1].throughput(), pair[0].pct(50), pair[1].pct(50))
                    )
                    cpu_per_request.setdefault(config, []).append((cpu[0], cpu[1]))
                    print(
                        f"  saturation ours {pair[0].throughput():.2f} vs {pair[1].throughput():.2f} req/s",
                        flush=True,
                    )
                    for k, rate in enumerate(rates, start=1):
                        runs: list[Run] = [Run(0, 1), Run(0, 1)]
                        for side in pairs(r, k):
                            runs[side] = open_loop((our_target, their_target)[side], rate, args.duration)
                        lat.setdefault((config, rate), []).append((runs[0], runs[1]))
                        print(
                            f"  {rate} req/s p99 ours {runs[0].pct(99):.1f} vs {runs[1].pct(99):.1f} ms",
                            flush=True,
                        )
                    if args.live_duration > 0:
                        live.append(
                            live_change(ours, ts, our_target, their_target, plan, cores, rates[0], args)
                        )
    lines = [f"### {name}: our plan `{plan}` ({how})", ""]
    lines += [
        (
            "Start-up to ready (s): "
            + "; ".join(f"{k} {', '.join(fmt(v) for v in vs)}" for k, vs in starts.items())
        ),
        "",
        "| row | vs TorchServe | ours | TorchServe | ours / TorchServe (per pair) | median ratio |",
        "|---|---|---|---|---|---|",
    ]
    for config, rows in sat.items():
        per = [o / t for o, t, *_ in rows if t > 0]
        lines.append(
            f"| saturation, {args.clients} closed-loop clients (req/s, higher is better) | {config} | "
            f"{', '.join(fmt(o, 2) for o, *_ in rows)} | {', '.join(fmt(t, 2) for _, t, *_ in rows)} | "
            f"{', '.join(f'{x:.2f}×' for x in per)} | {fmt(statistics.median(per), 2) + '×' if per else 'n/a'} |"
        )
    for config, rows_ in cpu_per_request.items():
        for k, part in ((0, "front end"), (1, "whole server")):
            per = [t[k] / o[k] for o, t in rows_ if o[k] > 0]
            lines.append(
                f"| CPU ms per request at saturation, {part} (ratio = theirs / ours, >1 means we use less) | {config} | "
                f"{', '.join(fmt(o[k], 2) for o, _ in rows_)} | {', '.join(fmt(t[k], 2) for _, t in rows_)} | "
                f"{', '.join(f'{x:.2f}×' for x in per)} | {fmt(statistics.median(per), 2) + '×' if per else 'n/a'} |"
            )
    for (config, rate), pairs_ in lat.items():
        for q in (50, 99):
            per = [t.pct(q) / o.pct(q) for o, t in pairs_ if o.pct(q) > 0]
            fails = sum(o.failed() for o, _ in pairs_), sum(t.failed() for _, t in pairs_)
            lines.append(
                f"| p{q} at {rate:g} req/s open loop (ms; ratio = theirs / ours, >1 means we are faster) | {config} | "
                f"{', '.join(fmt(o.pct(q)) for o, _ in pairs_)} | {', '.join(fmt(t.pct(q)) for _, t in pairs_)} | "
                f"{', '.join(f'{x:.2f}×' for x in per)} | {fmt(statistics.median(per), 2) + '×' if per else 'n/a'}"
                f"{f' (failed {fails[0]} / {fails[1]})' if any(fails) else ''} |"
            )
    if live:
        lines += [
            "",
            (
                f"Live change at {args.live_rate_note}: ours `{plan}` → `{alternative_plan(plan, cores)}` with "
                f"PUT /packrat/plan; TorchServe workers → 1 with PUT /models/{name}?min_worker=1&synchronous=true. "
                "Window = from the change request to the end of the run."
            ),
            "",
            "| TorchServe config | side | change answer | change took (s) | requests | failed | longest gap in window (s) | p99 in window (ms) | p99 whole run (ms) | first error |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for change in live:
            for who in ("ours", "theirs"):
                d = change[who]
                lines.append(
                    f"| {change['config']} | {'packrat' if who == 'ours' else 'TorchServe'} | {d['status']} | {fmt(d['took'], 2)} | "
                    f"{d['n']} | {d['failed']} | {fmt(d['gap'], 2)} | {fmt(d['p99w'])} | {fmt(d['p99'])} | {d['err']} |"
                )
    return lines


def live_change(
    ours: Ours,
    ts: TorchServe,
    our_t: Target,
    their_t: Target,
    plan: str,
    cores: int,
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One open-loop run per side with a change a third of the way in."""
    result: dict[str, Any] = {"config": ts.config}
    alt = alternative_plan(plan, cores)
    for side, target, change in (
        ("ours", our_t, lambda: ours.switch(alt)),
        ("theirs", their_t, lambda: ts.scale(1)),
    ):
        box: dict[str, Any] = {}

        def do(change: Callable[[], tuple[int, float, str]] = change, box: dict[str, Any] = box) -> None:
            box["t0"] = time.perf_counter()
            box["status"], box["took"], box["body"] = change()
            box["t1"] = time.perf_counter()

        run = open_loop(target, rate, args.live_duration, at=(args.live_duration / 3, do))
        lo, hi = box.get("t0", run.start), run.end  # to the end: TorchServe answers before it restarts
        result[side] = {
            "status": box.get("status", "none"), "took": box.get("took", math.nan), "n": len(run.records),
            "failed": run.failed(), "gap": run.longest_gap_s(lo, hi), "p99w": run.pct(99, lo, hi),
            "p99": run.pct(99), "err": (run.errors[0][:60].replace("|", "/") if run.errors else ""),
        }  # fmt: skip
        print(f"  live {side}: {result[side]}", flush=True)
    status, *_ = ours.switch(plan)  # back to the plan under test
    if status != 200:
        msg = f"switching back to {plan} answered {status}"
        raise RuntimeError(msg)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-cnn,resnet50")
    parser.add_argument(
        "--plan", default=None, help="per model, e.g. tiny-cnn=2x1x1,resnet50=2x1x1 (default: optimizer)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument(
        "--live-duration", type=float, default=12.0, help="seconds of the live-change run (0: skip)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds; each starts TorchServe once per config"
    )
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients at saturation")
    parser.add_argument("--rate-fractions", type=lambda s: [float(x) for x in s.split(",")], default=[0.25, 0.7],
                        help="open-loop rates as fractions of our calibrated saturation throughput")  # fmt: skip
    parser.add_argument("--point-time", type=float, default=2.0, help="quick profile: seconds per point")
    parser.add_argument("--profile-budget", type=float, default=60.0, help="quick profile: time budget (s)")
    parser.add_argument(
        "--max-queue-delay-ms", type=float, default=5.0, help="our batcher's wait (serve's default 5)"
    )
    parser.add_argument("--append", action="store_true", help="append to --out instead of replacing it")
    parser.add_argument("--venv", default=str(Path.home() / ".cache/packrat_lab/torchserve-venv"))
    parser.add_argument("--out", default=str(HERE / "results" / "vs-torchserve.md"))
    args = parser.parse_args()
    args.live_rate_note = f"{args.rate_fractions[0]:g} × our saturation"
    cores = detect_host().usable_cores
    header = host_description()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    t0 = time.perf_counter()
    ts_bin = ensure_venv(Path(args.venv))
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-vs-ts-") as tmp:
        for name in args.models.split(","):
            body += [*bench_model(name.strip(), args, ts_bin, cores, Path(tmp)), ""]
    load_end = os.getloadavg()
    text = "\n".join(
        [
            "# packrat-lab serve vs TorchServe 0.12 (same TorchScript file, same load generator)",
            "",
            header,
            "",
            (
                f"Command: `{command}` — took {time.perf_counter() - t0:.0f} s; load average at the end "
                f"{load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} (1/5/15 min)."
            ),
            "",
            (
                "Throughput ratio = ours / theirs; latency ratio = theirs / ours: above 1× means we are ahead. "
                "Each pair ran back to back (order flipped each time); TorchServe `default` = its defaults, "
                f"`best` = cpu_launcher_enable=true with {cores} workers (1 pinned thread each), batch 1."
            ),
            "",
            *body,
        ]
    )
    with open(args.out, "a" if args.append else "w") as out:
        out.write(("\n---\n\n" if args.append else "") + text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
