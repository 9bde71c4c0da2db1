"""Model files users bring today: torch.export `.pt2` programs and local Hugging Face model directories.

Both describe their own input, so `get_workload('model.pt2')` and `get_workload('./my-bert')` need no
example input: a `.pt2` records its input's shape and dtype (the batch dimension must be dynamic), a
Hugging Face directory's config.json names the model class, whose main input (token ids or pixel
values) fixes the sample shape. Nothing is ever downloaded (`local_files_only=True`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packrat_lab.workloads.base import Workload, WorkloadSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "build_exported",
    "build_hf_dir",
    "exported_workload",
    "hf_dir_workload",
    "is_hf_dir",
]

_EXPORT_EXAMPLE = (
    "torch.export.save(torch.export.export(model, (x,), "
    "dynamic_shapes={'x': {0: torch.export.Dim('batch')}}), 'model.pt2')"
)
_HF_EXAMPLE = "model.save_pretrained('my-model') then get_workload('my-model')"
_DTYPES = {"torch.float32": "float32", "torch.int64": "int64"}


def _first_tensor(model: torch.nn.Module, input_name: str | None = None) -> torch.nn.Module:
    """One tensor in (positional, or as keyword `input_name`), the output's first tensor out; built in eval mode."""
    import torch

    class FirstTensor(torch.nn.Module):
        """What workers and tracing expect: forward(x) -> tensor."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.model(**{input_name: x}) if input_name else self.model(x)
            if hasattr(out, "to_tuple"):
                out = out.to_tuple()
            elif isinstance(out, dict):
                out = tuple(out.values())
            return out[0] if isinstance(out, (tuple, list)) else out  # type: ignore[no-any-return]

        def train(self, mode: bool = True) -> FirstTensor:
            """Leave the inner model's mode alone (an exported program refuses train()/eval())."""
            self.training = mode
            return self

    FirstTensor.__name__ = FirstTensor.__qualname__ = f"{type(model).__name__}FirstTensor"
    return FirstTensor()


# ---- torch.export (.pt2)


def _load_program(path: Path) -> Any:
    import torch

    try:
        return torch.export.load(str(path))
    except Exception as exc:
        msg = f"{str(path)!r} is not a torch.export program torch.export.load can read ({type(exc).__name__}); save one with {_EXPORT_EXAMPLE}"
        raise ValueError(msg) from exc


def exported_workload(
    path: str | Path, sample_shape: tuple[int, ...] | None = None, high: int | None = None
) -> Workload:
    """A `.pt2` file from torch.export.save as a Workload; shape and dtype come from the program."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        msg = f"exported program {str(path)!r} does not exist; save one with {_EXPORT_EXAMPLE}"
        raise ValueError(msg)
    program = _load_program(path)
    user_inputs = list(program.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        msg = f"{path.name!r} takes {len(user_inputs)} inputs {user_inputs}; a pool feeds one tensor, export forward(x)"
        raise ValueError(msg)
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    value = node.meta.get("val")
    dims = list(getattr(value, "shape", ()))
    dtype = _DTYPES.get(str(getattr(value, "dtype", "")))
    if not dims or dtype is None:
        msg = (
            f"{path.name!r} takes {value!r}; a pool feeds one float32 or int64 tensor with a batch dimension"
        )
        raise ValueError(msg)
    if isinstance(dims[0], int):
        msg = f"{path.name!r} was exported with a fixed batch of {dims[0]}; export a dynamic batch: {_EXPORT_EXAMPLE}"
        raise ValueError(msg)  # noqa: TRY004 - ValueError is what the CLI turns into a one-line error
    if sample_shape is None:
        if not all(isinstance(d, int) for d in dims[1:]):
            msg = f"{path.name!r} has dynamic sample dimensions {dims[1:]}; give one, example: get_workload('{path.name}', sample_shape=(128,))"
            raise ValueError(msg)
        sample_shape = tuple(int(d) for d in dims[1:])
    options: tuple[tuple[str, Any], ...] = ()
    spec = WorkloadSpec("exported", str(path), options, tuple(int(d) for d in sample_shape), dtype, high)
    return Workload(path.stem, spec)


def build_exported(spec: WorkloadSpec) -> torch.nn.Module:
    """The program's module in a worker, wrapped to return one tensor."""
    return _first_tensor(_load_program(Path(spec.target)).module())


# ---- Hugging Face directories


def is_hf_dir(path: str | Path) -> bool:
    """Whether `path` is a local model directory save_pretrained wrote (it has a config.json)."""
    return Path(path).expanduser().joinpath("config.json").is_file()


@contextlib.contextmanager
def _quiet() -> Iterator[Any]:
    """transformers with its advisories and weight-loading progress bars silenced, then restored."""
    from transformers.utils import logging as hf_logging

    from packrat_lab.workloads.zoo import quiet_transformers

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        with quiet_transformers():
            import transformers

            yield transformers
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _model_class(transformers: Any, config: Any) -> Any:
    """The class save_pretrained recorded (config.architectures), else AutoModel's for the config."""
    for name in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        msg = f"transformers has no model class for {type(config).__name__}; save a model with {_HF_EXAMPLE}"
        raise ValueError(msg) from None


def _hf_input(
    config: Any, main_input: str, where: str, options: dict[str, Any]
) -> tuple[tuple[int, ...], str, int | None]:
    """(sample_shape, dtype, high) for the model's main input."""
    if main_input == "input_ids":
        longest = int(getattr(config, "max_position_embeddings", None) or 128)
        seq_len = options.get("seq_len", min(128, longest))
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= longest:
            msg = f"seq_len must be 1..{longest} for {where}, got {seq_len!r}; example: get_workload('{where}', seq_len=64)"
            raise ValueError(msg)
        return (seq_len,), "int64", int(getattr(config, "vocab_size", 2))
    if main_input == "pixel_values":
        size = options.get("image_size", getattr(config, "image_size", None) or 224)
        side = size[0] if isinstance(size, (list, tuple)) else size
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            msg = f"image_size must be a positive integer, got {size!r}; example: get_workload('{where}', image_size=224)"
            raise ValueError(msg)
        return (int(getattr(config, "num_channels", 3)), side, side), "float32", None
    msg = (
        f"{where} takes {main_input!r}; supported inputs are token ids (input_ids) and images (pixel_values)"
    )
    raise ValueError(msg)


def hf_dir_workload(path: str | Path, **options: Any) -> Workload:
    """A local Hugging Face model directory as a Workload (options: seq_len= or image_size=)."""
    path = Path(path).expanduser().resolve()
    unknown = sorted(set(options) - {"seq_len", "image_size"})
    if unknown:
        msg = f"unknown options {unknown} for a Hugging Face directory; valid: seq_len=, image_size= (example: seq_len=128)"
        raise ValueError(msg)
    if not is_hf_dir(path):
        msg = f"{str(path)!r} has no config.json; save a model with {_HF_EXAMPLE}"
        raise ValueError(msg)
    with _quiet() as transformers:
        try:
            config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            msg = f"{str(path)!r} has a config.json transformers cannot read ({exc}); save a model with {_HF_EXAMPLE}"
            raise ValueError(str(msg).splitlines()[0]) from exc
        cls = _model_class(transformers, config)
    shape, dtype, high = _hf_input(config, str(cls.main_input_name), path.name, options)
    spec = WorkloadSpec("hf", str(path), tuple(sorted(options.items())), shape, dtype, high)
    return Workload(path.name, spec)


def build_hf_dir(spec: WorkloadSpec) -> torch.nn.Module:
    """Load the directory's model with its saved weights (never a download), one tensor in and out."""
    with _quiet() as transformers:
        config = transformers.AutoConfig.from_pretrained(spec.target, local_files_only=True)
        cls = _model_class(transformers, config)
        model = cls.from_pretrained(spec.target, local_files_only=True)
    return _first_tensor(model.eval(), str(cls.main_input_name))
