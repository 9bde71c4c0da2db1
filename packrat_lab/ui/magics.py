"""`%load_ext packrat_lab`: the %packrat line magic (lab, profile, plan, serve, reconfigure, status, stop).

Loading imports neither torch nor the widgets; each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from packrat_lab.cli.args import positive_float, positive_int

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from packrat_lab.plan import Plan
    from packrat_lab.profiling.table import Profile
    from packrat_lab.ui.backend import Backend, PoolLike
    from packrat_lab.ui.lab import Lab

__all__ = ["PackratMagics", "load_ipython_extension", "unload_ipython_extension"]

_MAGIC = "packrat"


class _HelpShown(Exception):
    """--help was printed; the magic returns quietly."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors the IPython way instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message.strip())
        raise _HelpShown


def _batches(text: str) -> list[int]:
    from packrat_lab.ui._util import parse_batches

    try:
        return parse_batches(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> _Parser:
    """The %packrat grammar: one subcommand per step, each with --help."""
    parser = _Parser(prog="%packrat", description="Profile, plan and serve a model on this host's cores.")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    lab = sub.add_parser("lab", help="open the Lab widget (profile → plan → serve)")
    lab.add_argument("--model", help="zoo name or notebook variable to preselect, e.g. mlp")
    lab.add_argument("--cores", type=positive_int, help="cores to profile on (default: all usable)")
    lab.add_argument("--batches", type=_batches, default=[1, 2, 4, 8], help="batch sizes, e.g. 1,2,4,8")
    lab.add_argument(
        "--budget", type=positive_float("30"), default=30.0, help="profiling time budget in seconds"
    )
    prof = sub.add_parser(
        "profile", help="measure L[t][b] of a model (blocks; use the Lab for background runs)"
    )
    prof.add_argument("model", help="zoo name (mlp, tiny-cnn, ...) or a notebook variable holding a model")
    prof.add_argument("--cores", type=positive_int, help="cores to profile on (default: all usable)")
    prof.add_argument("--batches", type=_batches, default=[1, 2, 4, 8], help="batch sizes, e.g. 1,2,4,8")
    prof.add_argument(
        "--point-time", type=positive_float("30"), default=2.0, help="seconds cap per point (default 2)"
    )
    prof.add_argument(
        "--budget", type=positive_float("30"), help="total seconds cap (points not reached are skipped)"
    )
    prof.add_argument("-o", "--out", help="also save the profile as JSON to this file")
    prof.add_argument(
        "--as", dest="var", default="packrat_profile", help="notebook variable (default packrat_profile)"
    )
    plan = sub.add_parser("plan", help="the optimizer's plan for batch B against fat, thin and homogeneous")
    plan.add_argument("--batch", "-B", type=positive_int, required=True, help="total batch B, e.g. 8")
    plan.add_argument("--cores", "-T", type=positive_int, help="cores T (default: the profile's largest t)")
    plan.add_argument("--profile", help="notebook variable or file with a profile (default: the last one)")
    plan.add_argument(
        "--as", dest="var", default="packrat_plan", help="notebook variable (default packrat_plan)"
    )
    serve = sub.add_parser("serve", help="start a background pool with a plan")
    serve.add_argument("plan", nargs="?", help="plan text such as 2x1x4 (default: the last %%packrat plan)")
    serve.add_argument("--model", help="zoo name or notebook variable (default: the profiled model)")
    serve.add_argument("--auto", action="store_true", help="let the batch-size estimator reconfigure")
    serve.add_argument(
        "--as", dest="var", default="packrat_pool", help="notebook variable (default packrat_pool)"
    )
    reconf = sub.add_parser("reconfigure", help="switch the running pool to another plan, live")
    reconf.add_argument("plan", help="plan text such as 1x2x8 or 2x1x4")
    sub.add_parser("status", help="counters and latency of the running pool")
    sub.add_parser("stop", help="stop every pool and Lab started by %%packrat")
    return parser


@magics_class
class PackratMagics(Magics):
    """%packrat: the notebook's command line; remembers the last profile, plan and pool."""

    def __init__(self, shell: InteractiveShell, backend: Backend | None = None) -> None:
        super().__init__(shell)
        self._backend = backend
        self.parser = build_parser()
        self.profile: Profile | None = None
        self.model: Any = None
        self.plan: Plan | None = None
        self.pools: list[PoolLike] = []
        self.labs: list[Lab] = []

    @property
    def backend(self) -> Backend:
        """The real API unless a test injected a fake (imported on first use, not at load)."""
        if self._backend is None:
            from packrat_lab.ui.backend import RealBackend

            self._backend = RealBackend()
        return self._backend

    @backend.setter
    def backend(self, value: Backend) -> None:
        self._backend = value

    @line_magic
    def packrat(self, line: str) -> Any:
        """Profile, plan and serve a model: %packrat lab | profile | plan | serve | reconfigure | status | stop."""
        try:
            words = shlex.split(line)
        except ValueError as exc:  # unbalanced quotes
            msg = f"%packrat: {exc}; example: %packrat profile mlp --batches 1,2,4"
            raise UsageError(msg) from None
        try:
            args = self.parser.parse_args(words)
        except _HelpShown:
            return None
        if args.command is None:
            self.parser.print_help()
            return None
        handler = getattr(self, f"_cmd_{args.command}")
        try:
            return handler(args)
        except ValueError as exc:  # bad model names, infeasible plans: one line, no traceback
            raise UsageError(f"%packrat {args.command}: {str(exc).splitlines()[0]}") from None

    # ---- subcommands --------------------------------------------------------------------
    def _cmd_lab(self, args: argparse.Namespace) -> Lab:
        loading = _loading_note(
            "Loading packrat lab (widgets and plotly; the first time takes a few seconds)…"
        )
        from packrat_lab.ui.lab import Lab

        model = self._model(args.model) if args.model else None
        lab = Lab(
            model,
            args.cores,
            batches=args.batches,
            budget_s=args.budget,
            backend=self.backend,
            namespace=self._user_ns(),
        )
        self.labs.append(lab)
        if loading is not None:
            loading.update({"text/plain": ""}, raw=True)
        return lab

    def _cmd_profile(self, args: argparse.Namespace) -> None:
        import threading

        from packrat_lab.profiling.measurement import Measurement

        model = self._model(args.model)
        cores = args.cores or _usable_cores()

        def progress(done: int, total: int, m: Measurement) -> None:
            print(f"  [{done}/{total}] t={m.threads} b={m.batch} {m.setting}: {m.median:.2f} ms", flush=True)

        profile = self.backend.profile(
            model,
            cores=cores,
            batches=args.batches,
            point_time_s=args.point_time,
            progress=progress,
            cancel=threading.Event(),
            time_budget_s=args.budget,
        )
        self.profile, self.model = profile, model
        self._user_ns()[args.var] = profile
        saved = f", saved to {profile.save(args.out)}" if args.out else ""
        print(
            f"profiled {profile.model}: {len(profile.measurements)} points, threads {profile.threads}, "
            f"batches {profile.batches}; stored as `{args.var}`{saved}. Next: %packrat plan --batch B"
        )

    def _cmd_plan(self, args: argparse.Namespace) -> None:
        profile = self._profile(args.profile)
        cores = args.cores or profile.max_threads
        plans = self.backend.plans(profile, cores=cores, batch=args.batch)
        best = next(iter(plans.values()))
        self.plan = best
        self._user_ns()[args.var] = best
        fat = plans.get("fat")
        print(f"B={args.batch} on {cores} cores (profile {profile.model}):")
        for name, plan in plans.items():
            lat = plan.expected_latency_ms
            speed = ""
            if fat is not None and fat.expected_latency_ms and lat:
                speed = f"  {fat.expected_latency_ms / lat:.2f}× vs fat"
            lat_text = f"{lat:9.2f} ms" if lat else "      n/a"
            print(f"  {name:<18} {plan.text:<16} {lat_text}{speed}")
        print(f"stored `{args.var}` = {best.text}. Next: %packrat serve")

    def _cmd_serve(self, args: argparse.Namespace) -> PoolLike:
        from packrat_lab.plan import Plan

        plan = Plan.parse(args.plan) if args.plan else self.plan
        if plan is None:
            msg = "%packrat serve: no plan given and no %packrat plan yet; example: %packrat serve 2x1x4 --model mlp"
            raise UsageError(msg)
        model = self._model(args.model) if args.model else self.model
        if model is None:
            msg = "%packrat serve: which model? no profile yet; example: %packrat serve 2x1x4 --model mlp"
            raise UsageError(msg)
        pool = self.backend.pool(model, plan, self.profile)
        if args.auto:
            pool.set_auto(True)
        self.pools.append(pool)
        self._user_ns()[args.var] = pool
        print(
            f"serving {plan} in the background as `{args.var}`; %packrat reconfigure PLAN switches live, "
            "%packrat stop ends it"
        )
        return pool

    def _cmd_reconfigure(self, args: argparse.Namespace) -> None:
        from packrat_lab.plan import Plan

        pool = self._pool()
        plan = Plan.parse(args.plan)
        pool.reconfigure(plan)
        print(f"switched to {plan}")

    def _cmd_status(self, args: argparse.Namespace) -> None:
        from packrat_lab.ui.backend import stat

        stats = self._pool().stats()
        fields = (
            "served",
            "failed",
            "lost",
            "in_flight",
            "queue_depth",
            "p50_ms",
            "p99_ms",
            "throughput_rps",
            "estimated_batch",
        )
        print("  ".join(f"{name}={stat(stats, name):g}" for name in fields))

    def _cmd_stop(self, args: argparse.Namespace) -> None:
        count = self.stop_all()
        print(f"stopped {count} pool(s) and Lab(s) started by %packrat")

    # ---- helpers ------------------------------------------------------------------------
    def stop_all(self) -> int:
        """Close every pool and Lab this extension started; returns how many."""
        closed = 0
        while self.pools:
            self.pools.pop().close()
            closed += 1
        while self.labs:
            self.labs.pop().close()
            closed += 1
        return closed

    def _user_ns(self) -> dict[str, Any]:
        shell = self.shell
        return shell.user_ns if shell is not None else {}

    def _model(self, name: str) -> Any:
        """A notebook variable holding a model, else the name itself (a zoo model)."""
        value = self._user_ns().get(name)
        if value is not None and not isinstance(value, str):
            return value
        from packrat_lab.workloads.zoo import ZOO

        if name not in ZOO and ":" not in name and "/" not in name and "." not in name:
            msg = f"%packrat: unknown model {name!r}; valid: a zoo name ({', '.join(sorted(ZOO))}) or a notebook variable"
            raise UsageError(msg)
        return name

    def _profile(self, source: str | None) -> Profile:
        if source is None:
            if self.profile is None:
                msg = "%packrat plan: no profile yet; example: %packrat profile mlp --batches 1,2,4 first"
                raise UsageError(msg)
            return self.profile
        value = self._user_ns().get(source)
        if value is not None and hasattr(value, "grid"):
            profile: Profile = value
            return profile
        from packrat_lab.profiling.table import load_profile

        return load_profile(source)

    def _pool(self) -> PoolLike:
        if not self.pools:
            msg = "%packrat: no pool running; example: %packrat serve 2x1x4 --model mlp"
            raise UsageError(msg)
        return self.pools[-1]


def _usable_cores() -> int:
    from packrat_lab.host import detect_host

    return detect_host().usable_cores


def load_ipython_extension(ip: InteractiveShell) -> None:
    """%load_ext packrat_lab: register %packrat (cheap: no torch, no widgets)."""
    ip.register_magics(PackratMagics(ip))


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """%unload_ext packrat_lab: stop the pools and Labs %packrat started, then remove the magic."""
    manager = ip.magics_manager
    instance = manager.registry.pop(PackratMagics.__name__, None)
    if isinstance(instance, PackratMagics):
        instance.stop_all()
    manager.magics["line"].pop(_MAGIC, None)


def _loading_note(text: str) -> Any:
    """Show `text` in the cell's output at once (replaced when the Lab is ready); None outside IPython."""
    try:
        from IPython.display import display
    except ImportError:
        return None
    return display(  # type: ignore[no-untyped-call]
        {"text/plain": text, "text/html": f"<i>{text}</i>"}, raw=True, display_id=True
    )
