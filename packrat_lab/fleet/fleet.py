"""Fleet: several models on one host, each a Pool with its own plan on its own cores (Veltair's setting).

Threads: callers (`infer`, `submit`, `ask`, HTTP handlers) go straight to a model's pool; one
`switch_lock` serialises `reconfigure` (by hand or by the auto thread), which moves cores in two
phases: models whose new share lies inside their old one switch first (each pool's active-passive
switch settles once its old workers are gone), then the models that grow onto the freed cores. So
no core is ever held by two models, and every switch is the pool's own: nothing is lost.
Ensemble requests are gathered on the fleet's `packrat-fleet` executor; members' blocking
`infer` calls run on a separate `packrat-fleet-member` executor, so a gather never waits on work
queued behind gathers.
"""

from __future__ import annotations

import concurrent.futures
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packrat_lab.errors import PoolClosedError
from packrat_lab.fleet.partition import Shares, place_in, repartition, share_host
from packrat_lab.fleet.selection import EnsembleWeights, Exp3, Selection
from packrat_lab.plan import Plan
from packrat_lab.serving.events import Event, EventLog

if TYPE_CHECKING:
    import torch

    from packrat_lab.host import HostInfo
    from packrat_lab.serving.pool import Pool

__all__ = ["Answer", "Fleet"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXAMPLE = "Fleet({'small': ('tiny-cnn', '1x1x4'), 'big': ('mlp', '1x1x8')})"


@dataclass(frozen=True)
class Answer:
    """One answer of `Fleet.ask`: its request id (for feedback), output and the members that made it."""

    request_id: str
    output: torch.Tensor
    members: tuple[str, ...]


class Fleet:
    """Several models on one host, each served by its own Pool on its own cores.

    `Fleet({"name": (model, plan), ...})` starts every pool on disjoint cores (one-line
    InfeasiblePlanError when the plans cannot fit); a name may instead map to a `Selection` of
    other names (Clipper's model selection: exp3 or ensemble). `reconfigure({name: plan})` moves
    cores between models live; `stats()` is per model. Pool options (warmup, max_queue_delay_ms,
    policy, channels...) go to every pool; `profiles={name: Profile}` lets pools and auto mode plan.
    `slo_ms` (one for all, or per name) is each member pool's latency objective (admission,
    drops, attainment in its stats). With `auto=True` (needs profiles, `slo_ms`) the fleet re-plans from measured arrival rates
    with `optimize_fleet` and moves cores when the new split has held for `auto_hysteresis_s`.
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        *,
        profiles: Mapping[str, Any] | None = None,
        announce: bool = True,
        host: HostInfo | None = None,
        auto: bool = False,
        slo_ms: float | Mapping[str, float] | None = None,
        auto_interval_s: float = 1.0,
        auto_hysteresis_s: float = 3.0,
        auto_min_interval_s: float = 10.0,
        **pool_options: Any,
    ) -> None:
        from packrat_lab.host import detect_host

        if not isinstance(models, Mapping) or not models:
            msg = f"a fleet needs a dict of name -> (model, plan), got {models!r}; example: {_EXAMPLE}"
            raise ValueError(msg)
        self.host = host or detect_host()
        self.profiles = dict(profiles or {})
        self._pool_options = pool_options
        self._slo = slo_ms
        self.events_log = EventLog()
        self.switch_lock = threading.RLock()
        self._closed = False
        self.pools: dict[str, Pool] = {}
        self.groups: dict[str, tuple[Selection, Exp3 | EnsembleWeights]] = {}
        plans: dict[str, tuple[Any, Plan]] = {}
        for name, spec in models.items():
            _check_name(name)
            if isinstance(spec, Selection):
                continue
            if not (isinstance(spec, tuple) and len(spec) == 2):
                msg = f"fleet entry {name!r} must be (model, plan) or a Selection, got {spec!r}; example: {_EXAMPLE}"
                raise ValueError(msg)
            plans[name] = (spec[0], Plan.coerce(spec[1]))
        for name, spec in models.items():
            if isinstance(spec, Selection):
                self._add_group(name, spec, plans)
        self._shares: Shares = share_host({n: p.total_threads for n, (_, p) in plans.items()}, self.host)
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="packrat-fleet")
        # members' blocking infer calls: never on `_executor`, whose gathers wait on them
        self._member_executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="packrat-fleet-member")
        self.auto_policy: Any = None
        self._auto_stop = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self._announcement: Any = None
        self._start(plans)
        if auto:
            self._start_auto(slo_ms, auto_interval_s, auto_hysteresis_s, auto_min_interval_s)
        if announce:
            from packrat_lab.fleet.announce import announce_fleet

            self._announcement = announce_fleet(self)

    # -- start and stop -----------------------------------------------------------------------

    def attach_announcement(self, handle: Any) -> None:
        """Own an announcement made elsewhere (`packrat-lab serve`): withdrawn when the fleet closes."""
        self._announcement = handle

    def _add_group(self, name: str, spec: Selection, plans: Mapping[str, Any]) -> None:
        missing = [m for m in spec.members if m not in plans]
        if missing:
            msg = f"selection group {name!r} names {missing[0]!r}, which is not a model of this fleet (models: {sorted(plans)}); example: Selection(('a', 'b'))"
            raise ValueError(msg)
        learner: Exp3 | EnsembleWeights = (
            Exp3(spec.members, gamma=spec.gamma, seed=spec.seed)
            if spec.policy == "exp3"
            else EnsembleWeights(spec.members, eta=spec.eta)
        )
        self.groups[name] = (spec, learner)

    def _start(self, plans: Mapping[str, tuple[Any, Plan]]) -> None:
        """Start every pool at once (each returns when warm); on any failure close those started."""
        from packrat_lab.serving.pool import Pool

        def start(name: str) -> Pool:
            model, plan = plans[name]
            placed = place_in(plan, self._shares[name], self.host)
            options = {"announce": False, **self._pool_options}
            objective = self._slo.get(name) if isinstance(self._slo, Mapping) else self._slo
            if objective is not None:  # each member admits and drops by its own objective
                options.setdefault("slo_ms", objective)
            return Pool(model, placed, profile=self.profiles.get(name), name=name, **options)

        with ThreadPoolExecutor(
            max_workers=max(1, len(plans)), thread_name_prefix="packrat-fleet-start"
        ) as ex:
            futures = {name: ex.submit(start, name) for name in plans}
            concurrent.futures.wait(futures.values())
        failed = None
        for name, future in futures.items():
            if future.exception() is None:
                self.pools[name] = future.result()
            elif failed is None:
                failed = future.exception()
        if failed is not None:
            self.close()
            raise failed
        for name, pool in self.pools.items():
            self.events_log.record("start", pool.plan.text, model=name, cores=list(self._shares[name]))

    def close(self) -> None:
        """Stop auto mode, close every pool (queued work finishes) and withdraw the announcement."""
        if self._closed:
            return
        self._closed = True
        self._auto_stop.set()
        if self._auto_thread is not None and self._auto_thread is not threading.current_thread():
            self._auto_thread.join(10)
        with ThreadPoolExecutor(max_workers=max(1, len(self.pools))) as ex:
            list(ex.map(lambda p: p.close(), list(self.pools.values())))
        if hasattr(self, "_executor"):
            self._executor.shutdown(wait=True)
            self._member_executor.shutdown(wait=True)
        self.events_log.record("closed", "", models=sorted(self.pools))
        if getattr(self, "_announcement", None) is not None:
            self._announcement.close()

    def __enter__(self) -> Fleet:  # noqa: PYI034 - typing_extensions is not a dependency
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={p.plan.text}@{list(self._shares.get(n, ()))}" for n, p in self.pools.items())
        return f"Fleet({parts}{', ' if self.groups else ''}{', '.join(self.groups)})"

    # -- what is served -----------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every name requests may use: models, then selection groups."""
        return [*self.pools, *self.groups]

    @property
    def shares(self) -> dict[str, tuple[int, ...]]:
        """The cores each model owns now."""
        return dict(self._shares)

    @property
    def plans(self) -> dict[str, Plan]:
        """The plan each model serves now (cores filled in)."""
        return {name: pool.plan for name, pool in self.pools.items()}

    def pool(self, name: str) -> Pool:
        """The pool serving model `name` (ValueError naming the valid ones otherwise)."""
        found = self.pools.get(name)
        if found is None:
            msg = f"unknown model {name!r}; this fleet serves models {sorted(self.pools)}; example: fleet.pool({next(iter(self.pools))!r})"
            raise ValueError(msg)
        return found

    def _known(self, name: str) -> None:
        if name not in self.pools and name not in self.groups:
            msg = f"unknown model {name!r}; this fleet serves {self.names}; example: fleet.infer({self.names[0]!r}, x)"
            raise ValueError(msg)
        if self._closed:
            msg = f"fleet is closed; start a new Fleet to serve {name!r}"
            raise PoolClosedError(msg)

    # -- requests -----------------------------------------------------------------------------

    def infer(self, name: str, batch: torch.Tensor, *, timeout: float | None = None) -> torch.Tensor:
        """Run a batch through model (or selection group) `name`; output rows in order."""
        self._known(name)
        if name in self.pools:
            return self.pools[name].infer(batch, timeout=timeout)
        return self.ask(name, batch, timeout=timeout).output

    def submit(self, name: str, sample: torch.Tensor) -> Future[torch.Tensor]:
        """Queue one sample for `name`'s dynamic batcher; a group's future carries `.request_id`."""
        self._known(name)
        if name in self.pools:
            return self.pools[name].submit(sample)
        request_id = _new_id()
        outer: Future[torch.Tensor] = Future()
        outer.request_id = request_id  # type: ignore[attr-defined]
        inner = self._group_future(name, request_id, sample, batched=False)
        inner.add_done_callback(lambda f: _relay(f, outer, lambda a: a.output))
        outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
        return outer

    def ask(self, name: str, batch: torch.Tensor, *, timeout: float | None = None) -> Answer:
        """Run a batch through `name` and return the answer with its request id (for `feedback`)."""
        self._known(name)
        request_id = _new_id()
        if name in self.pools:
            return Answer(request_id, self.pools[name].infer(batch, timeout=timeout), (name,))
        return self._group_future(name, request_id, batch, batched=True).result(timeout)

    def feedback(self, request_id: str, reward: float | Mapping[str, float]) -> str:
        """Reward a selection-group answer (in [0, 1]; an ensemble also takes {member: reward}); returns the group."""
        for name, (_, learner) in self.groups.items():
            if isinstance(learner, Exp3):
                if isinstance(reward, Mapping):
                    continue
                if learner.feedback(request_id, reward):
                    return name
            elif learner.feedback(request_id, reward):
                return name
        msg = f"unknown request id {str(request_id)[:40]!r} (no selection group is waiting for its feedback, or it was already given); example: fleet.feedback(answer.request_id, 1.0)"
        raise ValueError(msg)

    def _group_future(self, name: str, request_id: str, x: torch.Tensor, *, batched: bool) -> Future[Answer]:
        spec, learner = self.groups[name]
        if isinstance(learner, Exp3):
            member = learner.choose(request_id)
            inner = self._run_member(member, x, batched=batched)
            out: Future[Answer] = Future()
            inner.add_done_callback(lambda f: _relay(f, out, lambda o: Answer(request_id, o, (member,))))
            return out
        futures = {m: self._run_member(m, x, batched=batched) for m in spec.members}
        return self._executor.submit(self._gather, request_id, futures, learner, spec.slo_ms, batched)

    def _run_member(self, member: str, x: torch.Tensor, *, batched: bool) -> Future[torch.Tensor]:
        pool = self.pools[member]
        if batched:
            return self._member_executor.submit(pool.infer, x)
        return pool.submit(x)

    def _gather(
        self,
        request_id: str,
        futures: dict[str, Future[torch.Tensor]],
        learner: EnsembleWeights,
        slo_ms: float | None,
        batched: bool,
    ) -> Answer:
        """Weighted average of the members that answered within the objective (stragglers counted)."""
        started = time.monotonic()
        timeout = None if slo_ms is None else slo_ms / 1000.0
        done, _ = concurrent.futures.wait(futures.values(), timeout=timeout)
        in_time = [m for m, f in futures.items() if f in done and f.exception() is None]
        late = [m for m, f in futures.items() if f not in done]
        fallback = not in_time
        if fallback:  # nobody in time: the first good answer
            for f in concurrent.futures.as_completed(futures.values()):
                if f.exception() is None:
                    in_time = [m for m, g in futures.items() if g is f]
                    break
            else:
                raise next(iter(futures.values())).exception()  # type: ignore[misc]
        weights = learner.weights(in_time)
        total = sum(weights[m] * futures[m].result().float() for m in in_time)
        learner.record(request_id, in_time, late, fallback=fallback)
        if late:
            ms = 1000 * (time.monotonic() - started)
            self.events_log.record("ensemble-late", "", request_id=request_id, used=in_time, late=late, ms=ms)
        return Answer(request_id, total, tuple(in_time))  # type: ignore[arg-type]

    # -- plans and cores ----------------------------------------------------------------------

    def reconfigure(self, plans: Mapping[str, Plan | str], *, source: str = "manual") -> dict[str, Plan]:
        """Switch the named models to new plans, moving cores between models live; returns every plan.

        Models that keep or shrink their share switch first, then those that grow onto the freed
        cores. Every plan is checked first (settings, batch bound, fit), so a refused request
        leaves every model as it was (ValueError, InfeasiblePlanError); a switch that fails
        leaves that model on its old plan and cores, and is raised after the others settle.
        """
        with self.switch_lock:
            if self._closed:
                msg = "fleet is closed; start a new Fleet to serve new plans"
                raise PoolClosedError(msg)
            # every plan checked at its pool's door (settings, batch bound) before any model switches
            targets = {name: self.pool(name).check_plan(plan) for name, plan in plans.items()}
            needs = {
                n: (targets[n].total_threads if n in targets else len(self._shares[n])) for n in self.pools
            }
            new = repartition(self._shares, needs, self.host)
            first = [n for n in targets if set(new[n]) <= set(self._shares[n])]
            second = [n for n in targets if n not in first]
            error = self._switch_phase(first, targets, new, source)
            if error is None:
                error = self._switch_phase(second, targets, new, source)
            if error is not None:
                raise error
            return self.plans

    def _switch_phase(
        self, names: list[str], targets: Mapping[str, Plan], new: Shares, source: str
    ) -> BaseException | None:
        futures: dict[str, Future[Plan]] = {}
        error: BaseException | None = None
        for name in names:
            placed = place_in(targets[name], new[name], self.host)
            try:
                futures[name] = self.pools[name].reconfigure(placed, wait=False)
            except Exception as exc:  # noqa: BLE001 - refused at the door: this model keeps its plan
                error = error or exc
        for name, future in futures.items():
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - the pool kept its old plan and cores
                error = error or exc
                continue
            self._shares[name] = new[name]
            self.events_log.record(
                "cores", self.pools[name].plan.text, model=name, cores=list(new[name]), source=source
            )
        return error

    # -- stats and events ---------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per model: the pool's stats plus its cores; per selection group: policy and learning state."""
        out: dict[str, dict[str, Any]] = {}
        for name, pool in self.pools.items():
            out[name] = {**pool.stats(), "cores": list(self._shares[name]), "model": pool.workload.name}
        for name, (spec, learner) in self.groups.items():
            out[name] = {"policy": spec.policy, "members": list(spec.members), **learner.snapshot()}
        return out

    def events(self) -> list[Event]:
        """The fleet's timeline: start, cores (a model's share moved), auto decisions, ensemble stragglers."""
        return self.events_log.snapshot()

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call `callback(event)` for every future fleet event."""
        self.events_log.subscribe(callback)

    # -- auto mode ----------------------------------------------------------------------------

    def _start_auto(self, slo_ms: Any, interval_s: float, hysteresis_s: float, min_interval_s: float) -> None:
        from packrat_lab.fleet.auto import FleetAutoPolicy

        missing = [n for n in self.pools if n not in self.profiles]
        if missing or slo_ms is None:
            msg = f"auto mode needs profiles of every model and slo_ms (missing profiles: {missing}); example: Fleet(models, profiles=profs, slo_ms=50, auto=True)"
            raise ValueError(msg)
        self.auto_policy = FleetAutoPolicy(
            self, slo_ms, hysteresis_s=hysteresis_s, min_interval_s=min_interval_s
        )
        self._auto_thread = threading.Thread(
            target=self._auto_loop, args=(interval_s,), name="packrat-fleet-auto", daemon=True
        )
        self._auto_thread.start()

    def _auto_loop(self, interval_s: float) -> None:
        while not self._auto_stop.wait(interval_s):
            try:
                target = self.auto_policy.step()
            except Exception as exc:  # noqa: BLE001 - a planner failure is an event, not a crash
                self.events_log.record("auto-failed", "", error=f"{type(exc).__name__}: {exc}")
                continue
            if target:
                self.events_log.record("auto-reconfigure", "", plans={n: p.text for n, p in target.items()})
                try:
                    self.reconfigure(target, source="auto")
                except Exception as exc:  # noqa: BLE001 - the fleet keeps serving its old plans
                    self.events_log.record("auto-failed", "", error=f"{type(exc).__name__}: {exc}")


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        msg = f"fleet model name {name!r} must be 1-64 letters, digits, '_', '.', '-'; example: {_EXAMPLE}"
        raise ValueError(msg)


def _new_id() -> str:
    return secrets.token_hex(8)


def _relay(inner: Future[Any], outer: Future[Any], convert: Callable[[Any], Any]) -> None:
    """Settle `outer` from `inner` (converted), unless `outer` was cancelled meanwhile."""
    if inner.cancelled():
        outer.cancel()
        return
    exc = inner.exception()
    if not outer.set_running_or_notify_cancel():
        return
    if exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(convert(inner.result()))
