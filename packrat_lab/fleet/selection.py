"""Clipper's model selection: several models for one task behind one name, chosen by Exp3 or ensembled.

`Exp3` picks one member per request and learns from rewards in [0, 1]; `EnsembleWeights` keeps
Hedge weights for averaging members' outputs. Both are plain, seeded, thread-safe state: the fleet
runs the members, these only decide and learn.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["POLICIES", "EnsembleWeights", "Exp3", "Selection"]

POLICIES = ("exp3", "ensemble")
T = TypeVar("T")
_PENDING = 100_000  # request ids remembered for feedback; older ones are forgotten


@dataclass(frozen=True)
class Selection:
    """A selection group: `members` (fleet model names) served as one name under `policy`.

    exp3: one member per request, learning from `Fleet.feedback(request_id, reward)`.
    ensemble: every member runs; outputs are averaged with learned weights over the members that
    answer within `slo_ms` (stragglers are left out and counted; with none in time, the first answer).
    """

    members: tuple[str, ...]
    policy: str = "exp3"
    gamma: float = 0.1
    eta: float = 0.5
    slo_ms: float | None = None
    seed: int | None = None
    options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        if self.policy not in POLICIES:
            msg = f"selection policy {self.policy!r} is not one of {list(POLICIES)}; example: Selection(('a', 'b'), policy='exp3')"
            raise ValueError(msg)
        if len(self.members) < 2 or len(set(self.members)) != len(self.members):
            msg = f"a selection group needs two or more distinct members, got {list(self.members)}; example: Selection(('a', 'b'))"
            raise ValueError(msg)
        if not 0 < self.gamma <= 1:
            msg = f"gamma must be in (0, 1], got {self.gamma!r}; example: Selection(('a', 'b'), gamma=0.1)"
            raise ValueError(msg)
        if self.slo_ms is not None and not self.slo_ms > 0:
            msg = f"slo_ms must be positive, got {self.slo_ms!r}; example: Selection(('a', 'b'), policy='ensemble', slo_ms=50)"
            raise ValueError(msg)


def _check_reward(reward: float) -> float:
    if not isinstance(reward, (int, float)) or isinstance(reward, bool) or not 0.0 <= reward <= 1.0:
        msg = f"reward must be a number in [0, 1], got {reward!r}; example: fleet.feedback(request_id, 1.0)"
        raise ValueError(msg)
    return float(reward)


class _Pending(Generic[T]):
    """Request id -> what was decided for it, bounded (oldest forgotten first)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, T] = OrderedDict()

    def put(self, request_id: str, value: T) -> None:
        self._items[request_id] = value
        while len(self._items) > _PENDING:
            self._items.popitem(last=False)

    def pop(self, request_id: str) -> T | None:
        return self._items.pop(request_id, None)


class Exp3:
    """Exp3 (Auer et al. 2002), as Clipper uses it: p_i = (1-γ) w_i/Σw + γ/K; w_i *= exp(γ r/(p_i K))."""

    def __init__(self, arms: Sequence[str], *, gamma: float = 0.1, seed: int | None = None) -> None:
        self.arms = tuple(arms)
        self.gamma = gamma
        self._log_w = [0.0] * len(self.arms)
        self._rng = random.Random(seed)
        self._pending: _Pending[tuple[int, float]] = _Pending()
        self._lock = threading.Lock()
        self.picks = dict.fromkeys(self.arms, 0)
        self.rewards = dict.fromkeys(self.arms, 0.0)

    def probabilities(self) -> dict[str, float]:
        """The current chance of each arm."""
        with self._lock:
            return dict(zip(self.arms, self._probs(), strict=True))

    def _probs(self) -> list[float]:
        top = max(self._log_w)
        w = [math.exp(v - top) for v in self._log_w]
        total = sum(w)
        k = len(self.arms)
        return [(1 - self.gamma) * x / total + self.gamma / k for x in w]

    def choose(self, request_id: str) -> str:
        """Draw an arm for a request and remember the draw for its feedback."""
        with self._lock:
            probs = self._probs()
            i = self._rng.choices(range(len(self.arms)), weights=probs)[0]
            self._pending.put(request_id, (i, probs[i]))
            self.picks[self.arms[i]] += 1
        return self.arms[i]

    def feedback(self, request_id: str, reward: float) -> bool:
        """Learn from a reward in [0, 1]; False when the request id is unknown (or already rewarded)."""
        reward = _check_reward(reward)
        with self._lock:
            found = self._pending.pop(request_id)
            if found is None:
                return False
            i, p = found
            self._log_w[i] += self.gamma * reward / (p * len(self.arms))
            self.rewards[self.arms[i]] += reward
        return True

    def snapshot(self) -> dict[str, object]:
        """Probabilities, picks and summed rewards per arm."""
        with self._lock:
            return {
                "probabilities": dict(zip(self.arms, self._probs(), strict=True)),
                "picks": dict(self.picks),
                "rewards": dict(self.rewards),
            }


class EnsembleWeights:
    """Hedge weights over members: w_i ∝ exp(η Σ r_i); averaging uses those that answered in time."""

    def __init__(self, members: Sequence[str], *, eta: float = 0.5) -> None:
        self.members = tuple(members)
        self.eta = eta
        self._log_w = dict.fromkeys(self.members, 0.0)
        self._pending: _Pending[tuple[str, ...]] = _Pending()
        self._lock = threading.Lock()
        self.stragglers = dict.fromkeys(self.members, 0)
        self.answered = dict.fromkeys(self.members, 0)
        self.late_requests = 0  # no member answered in time: the first answer was used

    def weights(self, among: Sequence[str] | None = None) -> dict[str, float]:
        """Normalised weights over `among` (default: all members)."""
        names = self.members if among is None else tuple(among)
        with self._lock:
            top = max(self._log_w[n] for n in names)
            raw = {n: math.exp(self._log_w[n] - top) for n in names}
        total = sum(raw.values())
        return {n: v / total for n, v in raw.items()}

    def record(self, request_id: str, used: Sequence[str], late: Sequence[str], *, fallback: bool) -> None:
        """Count who answered in time and who straggled; remember the members used for feedback."""
        with self._lock:
            for n in used:
                self.answered[n] += 1
            for n in late:
                self.stragglers[n] += 1
            self.late_requests += int(fallback)
            self._pending.put(request_id, tuple(used))

    def feedback(self, request_id: str, reward: float | Mapping[str, float]) -> bool:
        """A reward for the answer (every member used gets it) or per member; False if unknown."""
        with self._lock:
            used = self._pending.pop(request_id)
            if used is None:
                return False
            per = (
                {n: _check_reward(reward[n]) for n in reward if n in self._log_w}
                if isinstance(reward, Mapping)
                else dict.fromkeys(used, _check_reward(reward))
            )
            for n, r in per.items():
                self._log_w[n] += self.eta * r
        return True

    def snapshot(self) -> dict[str, object]:
        """Weights, answers in time, stragglers per member and requests that had to use a late answer."""
        return {
            "weights": self.weights(),
            "answered": dict(self.answered),
            "stragglers": dict(self.stragglers),
            "late_requests": self.late_requests,
        }
