"""State of the Lab's Serve step: a pool served by its own process, load from another, a bounded stats history.

The controller is a client: it polls the pool's stats and events (a background sampler thread) and
follows what it reads — the plan (Auto or the sidebar may switch it), the auto flag, the latency
objective, a stop made elsewhere — so the widget never shows a state the pool is not in. Nothing
here serves or sends load, and nothing runs per request: the SLO's refusals, drops and late answers
reach the timeline as the pool's counters, read at each poll.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from packrat_lab.ui._util import Listeners, check_slo_ms, first_line, fmt_ms
from packrat_lab.ui.backend import stat

if TYPE_CHECKING:
    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.ui.backend import Backend, LoadLike, PoolLike

__all__ = ["COUNTERS", "ServeController", "ServeState"]

COUNTERS = ("served", "failed", "lost", "in_flight", "rejected", "dropped", "late")
# what each poll keeps for the timeline beside the counters (SLO: objective, attainment, goodput, AIMD B, error)
SERIES = (
    "p50_ms",
    "p99_ms",
    "queue_depth",
    "estimated_batch",
    "slo_ms",
    "slo_attainment",
    "goodput_rps",
    "aimd_batch",
    "prediction_error_p99_ms",
)
_THROUGHPUT_SPAN_S = 2.0  # served-counter differences over this span give the throughput series
_GONE = ("closed", "closing", "stopped")


class ServeState(enum.Enum):
    """Where the pool is."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    RECONFIGURING = "reconfiguring"
    STOPPING = "stopping"
    FAILED = "failed"


class ServeController:
    """Owns one pool at a time; samples pool.stats() into a bounded window for the live timeline."""

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        window_s: float = 60.0,
        max_samples: int = 1200,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.window_s = window_s
        self.state = ServeState.STOPPED
        self.pool: PoolLike | None = None
        self.plan: Plan | None = None
        self.error: str | None = None
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_samples)
        self.events: list[Any] = []
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.rate = 20.0
        self.poisson = True
        self.seed = 0
        self.auto = False
        self.slo_ms: float | None = None  # the latency objective: the next pool starts with it
        self._slo_asks = 0  # +1 as a set_slo starts and ends: a poll that overlaps one cannot revert it
        self.note: str | None = None  # what changed outside the widget, said once in the status line
        self.load: LoadLike | None = None
        self.started: float | None = None
        self.changed = Listeners()
        self._stop_sampling = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """A pool exists and serves."""
        return self.state in (ServeState.RUNNING, ServeState.RECONFIGURING)

    @property
    def busy(self) -> bool:
        """A start, switch or stop is in flight."""
        return self.state in (ServeState.STARTING, ServeState.RECONFIGURING, ServeState.STOPPING)

    @property
    def load_running(self) -> bool:
        """The load process is sending requests."""
        return self.load is not None and self.load.alive

    def start(
        self,
        model: Any,
        plan: Plan,
        profile: Profile | None = None,
        *,
        sample_interval_s: float | None = 0.33,
    ) -> None:
        """Start a pool running `plan` in the background; sample its stats every `sample_interval_s`."""
        if self.running or self.busy:
            msg = "a pool is already running; press Stop first"
            raise RuntimeError(msg)
        self.state, self.plan, self.error, self.note = ServeState.STARTING, plan, None, None
        self.started = None
        self.samples.clear()
        self.events = []
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.changed()
        self._spawn(self._start, model, plan, profile, sample_interval_s)

    def _start(
        self, model: Any, plan: Plan, profile: Profile | None, sample_interval_s: float | None
    ) -> None:
        try:
            slo = self.slo_ms
            pool = self.backend.serve(model, plan, profile, slo_ms=slo)
            if self.auto:
                pool.set_auto(True)
            if self.slo_ms != slo:  # changed in the box while the server started
                pool.set_slo(self.slo_ms)
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            self.state, self.error = ServeState.FAILED, f"pool failed to start: {first_line(exc)}"
            self.changed()
            return
        self.pool, self.state, self.started = pool, ServeState.RUNNING, self.clock()
        self._stop_sampling.clear()
        self.sample()
        if sample_interval_s:
            self._spawn(self._sample_loop, sample_interval_s, name="packrat-sampler")

    def stop(self) -> None:
        """Stop the load process, then stop the pool's server and read its final counters."""
        self.stop_load()
        self._stop_sampling.set()
        for thread in list(self._threads):
            if thread.name == "packrat-sampler" and thread is not threading.current_thread():
                thread.join(5)
        pool = self.pool
        if pool is None:
            if self.state is not ServeState.FAILED:
                self.state = ServeState.STOPPED
            self.changed()
            return
        self.state = ServeState.STOPPING
        self.changed()
        self.sample(pool, final=True)  # last counters, read before the server exits
        try:
            pool.close()
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            self.error = f"pool did not close cleanly: {first_line(exc)}"
        self.pool, self.state = None, ServeState.STOPPED
        self.changed()

    def detach(self) -> None:
        """Stop watching the pool (and stop this widget's load) but leave it serving for other clients."""
        self.stop_load()
        self._stop_sampling.set()
        self.pool, self.state = None, ServeState.STOPPED
        self.note = "Detached: the pool keeps serving (see the Packrat sidebar)."
        self.changed()

    def _stopped_elsewhere(self, why: str) -> None:
        """The pool went away without this widget asking (sidebar Stop, another client, a crash)."""
        self.stop_load()
        self._stop_sampling.set()
        self.pool, self.state = None, ServeState.STOPPED
        self.note = why
        self.changed()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for background starts and switches (tests)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            if thread.name == "packrat-serve":
                thread.join(max(0.0, deadline - time.monotonic()))

    # ---- actions on a running pool ---------------------------------------------------------
    def reconfigure(self, plan: Plan) -> None:
        """Switch the pool to `plan` live (active-passive) without blocking the kernel."""
        if self.state is not ServeState.RUNNING or self.pool is None:
            msg = "start a pool before reconfiguring it"
            raise RuntimeError(msg)
        self.state, self.error, self.note = ServeState.RECONFIGURING, None, None
        self.changed()
        self._spawn(self._reconfigure, self.pool, plan)

    def _reconfigure(self, pool: PoolLike, plan: Plan) -> None:
        try:
            if self.auto:  # manual beats auto: pause the estimator first, or it would undo this switch
                pool.set_auto(False)
                self.auto = False
                self.note = "Auto paused: you switched the plan by hand (tick Auto to resume)."
            pool.reconfigure(plan)
            self.plan = plan
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            self.error = f"reconfiguration to {plan} failed: {first_line(exc)}"
        if self.state is ServeState.RECONFIGURING:
            self.state = ServeState.RUNNING
        self.sample()

    def set_auto(self, enabled: bool) -> None:
        """Let the pool's batch-size estimator pick plans (kept for the next pool too)."""
        if enabled == self.auto:
            return  # e.g. the checkbox catching up with a change the pool reported: nothing to send
        self.auto = enabled
        self.note = None
        if self.pool is not None:
            try:
                self.pool.set_auto(enabled)
            except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
                self.error = f"auto mode: {first_line(exc)}"
        self.changed()

    def set_slo(self, slo_ms: float | None) -> None:
        """The latency objective in ms (None: off): a running pool changes it live, the next pool starts with it.

        A one-line ValueError for a bad value; a pool that refuses it raises (HTTPStatusError), and
        the objective stays what it was.
        """
        slo_ms = check_slo_ms(slo_ms)
        with self._lock:
            self._slo_asks += 1
        try:
            pool = self.pool
            if pool is not None and self.running:
                pool.set_slo(slo_ms)
            self.slo_ms = slo_ms
            self.note = None
        finally:
            with self._lock:
                self._slo_asks += 1
        self.changed()

    def start_load(self, rate: float | None = None, poisson: bool | None = None) -> None:
        """Send requests at `rate` per second (Poisson arrivals unless poisson=False) from a load process."""
        if rate is not None:
            self.set_rate(rate)
        if poisson is not None:
            self.poisson = poisson
        if not self.running or self.pool is None:
            msg = "start a pool before sending load"
            raise RuntimeError(msg)
        if not self.load_running:
            self.seed += 1  # a fresh stretch of arrivals each time load is switched on
            self.load = self.backend.start_load(
                self.pool, rate=self.rate, poisson=self.poisson, seed=self.seed
            )
        self.changed()

    def stop_load(self) -> None:
        """Stop the load process (its last requests finish)."""
        load = self.load
        if load is not None and load.alive:
            load.stop()
            self.changed()

    def set_rate(self, rate: float) -> None:
        """Requests per second; a running load process follows from its next arrival."""
        if not rate > 0:
            msg = f"rate must be positive requests per second, got {rate!r}; example: 50"
            raise ValueError(msg)
        self.rate = float(rate)
        if self.load is not None and self.load.alive:
            self.load.set_rate(self.rate)

    # ---- sampling --------------------------------------------------------------------------
    def sample(self, pool: PoolLike | None = None, *, final: bool = False) -> dict[str, Any] | None:
        """Read the pool's stats and events once and follow them: plan, auto flag, state, counters.

        final: the pool is being stopped by this widget; a failing read then changes nothing.
        """
        pool = pool if pool is not None else self.pool
        if pool is None:
            return None
        with self._lock:
            asks = self._slo_asks
        try:
            stats = pool.stats()
            events = list(pool.events())
        except Exception as exc:  # noqa: BLE001 - a background thread reports failures as status
            if not final and pool is self.pool:
                self._stopped_elsewhere(
                    f"The pool stopped outside this Lab (sidebar Stop, another client, or it exited): "
                    f"{first_line(exc)}"
                )
            return None
        now = self.clock()
        row: dict[str, float | None] = {"time": now}
        for name in (*SERIES, *COUNTERS):
            value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)
            row[name] = None if value is None else stat(stats, name)
        with self._lock:
            row["throughput_rps"] = self._throughput(now, row["served"])
            self.samples.append(row)
            self.events = [e for e in events if _event_time(e) >= now - self.window_s]
            self.counters = {name: int(stat(stats, name)) for name in COUNTERS}
        if not final:
            self._follow(stats, slo_current=asks == self._slo_asks and asks % 2 == 0)
        self.changed()
        return row

    def _throughput(self, now: float, served: float | None) -> float | None:
        """Requests per second from the served counter over the last ~2 s (no ramp from a fixed window)."""
        if served is None:
            return None
        for old in self.samples:
            if now - old["time"] <= _THROUGHPUT_SPAN_S and old.get("served") is not None:
                span = now - old["time"]
                return max(0.0, (served - old["served"]) / span) if span > 0 else None
        return None

    def _follow(self, stats: Any, *, slo_current: bool = True) -> None:
        """Take the pool's word for plan, auto, SLO and state: Auto, the sidebar or a notebook may change them.

        slo_current: no set_slo was made while these stats were read (else they may predate it).
        """
        from packrat_lab.plan import Plan

        state = str(stats.get("state", "serving") if isinstance(stats, dict) else getattr(stats, "state", ""))
        if state.lower() in _GONE:
            self._stopped_elsewhere("The pool was stopped outside this Lab (sidebar Stop or another client).")
            return
        text = stats.get("plan") if isinstance(stats, dict) else None
        moved = isinstance(text, str) and self.plan is not None and text != self.plan.text
        if moved and isinstance(text, str) and self.state is not ServeState.RECONFIGURING:
            try:
                self.plan = Plan.parse(text)
            except ValueError:
                return
            why = "Auto" if self.auto else "another client (sidebar or notebook)"
            self.note = f"{why} switched the pool to {text}."
        auto = stats.get("auto") if isinstance(stats, dict) else None
        if isinstance(auto, bool) and auto != self.auto and self.state is not ServeState.RECONFIGURING:
            self.auto = auto
            self.note = (
                "Auto was turned on elsewhere."
                if auto
                else "Auto was paused elsewhere (a manual switch beats Auto)."
            )
        if slo_current and isinstance(stats, dict) and "slo_ms" in stats:
            slo = stats["slo_ms"]
            slo = float(slo) if isinstance(slo, (int, float)) and not isinstance(slo, bool) else None
            if slo != self.slo_ms:
                self.slo_ms = slo
                self.note = (
                    "The latency objective was turned off elsewhere."
                    if slo is None
                    else f"The latency objective was set to {fmt_ms(slo)} ms elsewhere."
                )

    def _sample_loop(self, interval_s: float) -> None:
        while not self._stop_sampling.wait(interval_s):
            if self.pool is None:
                return
            self.sample()

    def window(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """Samples and events of the last `window_s` seconds (what the timeline draws)."""
        with self._lock:
            if not self.samples:
                return [], list(self.events)
            end = self.samples[-1]["time"]
            return [s for s in self.samples if s["time"] >= end - self.window_s], list(self.events)

    def _spawn(self, target: Callable[..., None], *args: Any, name: str | None = None) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name or "packrat-serve")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def status(self) -> str:
        """One line that says what is happening."""
        plan = f" {self.plan}" if self.plan is not None else ""
        if self.error and self.state is not ServeState.RUNNING:
            return f"<span style='color:#b00020'>{self.error}</span>"
        note = f" <span style='color:#b00020'>{self.error}</span>" if self.error else ""
        if self.note:
            note += f" <span class='packrat-note' style='color:#8a5a00'>{self.note}</span>"
        if self.state is ServeState.STOPPED and (self.samples or self.counters["served"]):
            c = self.counters
            refused = f", {c['rejected']:,} refused by the SLO" if c["rejected"] else ""
            return (
                f"Pool stopped after serving {c['served']:,} requests ({c['failed']:,} failed, {c['lost']:,} lost"
                f"{refused}). Press Start pool to serve again." + note
            )
        if self.state is ServeState.STOPPED:
            return "No pool running. Pick a plan and press Start pool." + note
        if self.state is ServeState.STARTING:
            return f"Starting worker processes for{plan}…"
        if self.state is ServeState.RECONFIGURING:
            return (
                f"Switching live (active-passive) from{plan}: new workers warm up, then traffic moves over…"
            )
        if self.state is ServeState.STOPPING:
            return "Draining and stopping the pool…"
        load = "no load (press Send load)"
        if self.load is not None and getattr(self.load, "died", False):
            load = f"<span style='color:#b00020'>the load process stopped: {self.load.error or 'it exited'}</span>"
        elif self.load_running and self.load is not None:
            sent = self.load.counts()
            load = (
                f"asked {self.rate:g} req/s, load process sent {int(sent['released']):,} "
                f"({sent['achieved_rps']:.1f} req/s)"
            )
        auto = ", auto-reconfiguration on" if self.auto else ""
        if self.slo_ms is not None:
            auto += f", SLO {fmt_ms(self.slo_ms)} ms"
        where = ""
        url, pid = getattr(self.pool, "url", None), getattr(self.pool, "pid", None)
        if url:
            where = f" at <code>{url}</code>" + (f" (server pid {pid})" if pid else "")
        return f"Serving{plan}{where}; {load}{auto}." + note


def _event_time(event: Any) -> float:
    value = event.get("time") if isinstance(event, dict) else getattr(event, "time", 0.0)
    return float(value or 0.0)
