"""Workloads: zoo shapes and dtypes, user modules and files rebuilt in spawned processes."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest
import torch

from packrat_lab.workloads.base import Workload, WorkloadSpec, build_from_spec
from packrat_lab.workloads.registry import get_workload, zoo_names
from packrat_lab.workloads.zoo import BERT_VOCAB, GPT2_VOCAB


class Scale(torch.nn.Module):
    """An importable user module (saved with torch.save)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x)) * 2


def make_scale() -> torch.nn.Module:
    """Import-string factory returning a module."""
    return Scale()


def make_scale_workload(width: int = 8) -> Workload:
    """Import-string factory returning a Workload (its shape is taken from it)."""
    return Workload("scale", WorkloadSpec("saved", "", (), (width,), "float32"), builder=Scale)


def _rebuild_and_run(spec: WorkloadSpec, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return build_from_spec(spec).eval()(x).clone()


def run_in_spawned(spec: WorkloadSpec, x: torch.Tensor) -> torch.Tensor:
    """Rebuild the spec in a fresh spawned interpreter and run it on x."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_rebuild_and_run, (spec, x))


@pytest.mark.parametrize(
    ("name", "options", "shape", "dtype", "high"),
    [
        ("resnet50", {}, (3, 224, 224), "float32", None),
        ("inception_v3", {}, (3, 299, 299), "float32", None),
        ("bert", {}, (128,), "int64", BERT_VOCAB),
        ("bert", {"seq_len": 16}, (16,), "int64", BERT_VOCAB),
        ("gpt2", {}, (128,), "int64", GPT2_VOCAB),
        ("mlp", {}, (1024,), "float32", None),
        ("tiny-cnn", {}, (3, 32, 32), "float32", None),
    ],
)
def test_zoo_input_signatures(
    name: str, options: dict[str, Any], shape: tuple[int, ...], dtype: str, high: int | None
) -> None:
    w = get_workload(name, **options)
    assert (w.sample_shape, w.dtype, w.spec.high, w.spec.kind) == (shape, dtype, high, "zoo")
    x = w.example_input(3)
    assert tuple(x.shape) == (3, *shape) and str(x.dtype) == f"torch.{dtype}"
    if high is not None:
        assert 0 <= int(x.min()) and int(x.max()) < high


def test_unknown_model_lists_the_zoo() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet51'") as info:
        get_workload("resnet51")
    for name in zoo_names():
        assert name in str(info.value)
    assert "example" in str(info.value)


def test_unknown_zoo_option_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not take options"):
        get_workload("resnet50", seq_len=16)
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        get_workload("bert", seq_len=0)


def test_small_zoo_models_are_seeded_and_run() -> None:
    for name in ("mlp", "tiny-cnn"):
        w = get_workload(name)
        a, b = w.build(), w.build()
        x = w.example_input(2)
        with torch.inference_mode():
            assert torch.equal(a(x), b(x))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options", "out_shape"),
    [
        ("resnet50", {}, (1, 1000)),
        ("inception_v3", {}, (1, 1000)),
        ("bert", {"seq_len": 16}, (1, 768)),
        ("gpt2", {"seq_len": 16}, (1, 16, 768)),
    ],
)
def test_big_zoo_models_build_seeded_and_run_batch_one(
    name: str, options: dict[str, Any], out_shape: tuple[int, ...]
) -> None:
    w = get_workload(name, **options)
    model = w.build()
    assert not model.training
    with torch.inference_mode():
        y = model(w.example_input(1))
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == out_shape and torch.isfinite(y).all()
    first = next(iter(model.state_dict().values()))
    again = next(iter(w.build().state_dict().values()))
    assert torch.equal(first, again)  # seeded: every process builds the same weights


@pytest.mark.slow
def test_inception_v3_layout() -> None:
    from packrat_lab.workloads.inception import InceptionV3

    model = InceptionV3()
    assert sum(p.numel() for p in model.parameters()) == 23_834_568  # standard Inception-v3 without aux head
    with torch.inference_mode():
        stem = model.stem.eval()(torch.zeros(1, 3, 299, 299))
        assert tuple(stem.shape) == (1, 192, 35, 35)
        widths = []
        for block in model.features.eval():
            stem = block(stem)
            widths.append(stem.shape[1])
    assert widths == [256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048]
    assert tuple(stem.shape[2:]) == (8, 8)


def test_importable_module_is_saved_and_local_module_is_exported() -> None:
    saved = get_workload(Scale(), example_input=torch.randn(2, 8))
    assert saved.spec.kind == "saved" and saved.sample_shape == (8,) and Path(saved.spec.target).is_file()

    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1, keepdim=True)

    exported = get_workload(Local(), example_input=lambda b: torch.ones(b, 5))
    assert exported.spec.kind == "exported" and exported.spec.target.endswith(".pt2")
    assert exported.sample_shape == (5,)
    with torch.inference_mode():
        for batch in (1, 3):  # a dynamic batch: any instance batch size works
            assert torch.equal(exported.build()(torch.ones(batch, 5)), torch.full((batch, 1), 5.0))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_local_module_export_cannot_capture_is_traced_instead() -> None:
    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: torch.export refuses, tracing records one branch
                return x * 2
            return x

    traced = get_workload(Branchy(), example_input=torch.ones(2, 4))
    assert traced.spec.kind == "torchscript" and traced.spec.target.endswith(".pt")
    with torch.inference_mode():
        assert traced.build()(torch.ones(3, 4)).shape == (3, 4)


def test_module_without_example_input_is_refused() -> None:
    with pytest.raises(ValueError, match="example_input="):
        get_workload(Scale())
    with pytest.raises(ValueError, match="dtype torch.float16 is not supported"):
        get_workload(Scale(), example_input=torch.zeros(1, 8, dtype=torch.float16))


def test_int64_example_input_records_vocabulary_bound() -> None:
    class Embed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.emb(x).mean(dim=1)

    w = get_workload(Embed(), example_input=torch.tensor([[0, 49, 3]]))
    assert (w.dtype, w.spec.high, w.sample_shape) == ("int64", 50, (3,))
    assert int(w.example_input(64).max()) < 50


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "scale.pt"
    torch.jit.save(torch.jit.trace(Scale().eval(), torch.randn(2, 8)), str(path))
    w = get_workload(str(path), example_input=torch.randn(1, 8))
    assert (w.spec.kind, w.sample_shape, w.name) == ("torchscript", (8,), "scale")
    assert get_workload(path, sample_shape=(8,)).sample_shape == (8,)
    with pytest.raises(
        ValueError, match="needs its input shape: --sample-shape 3,224,224 on the command line"
    ):
        get_workload(str(path))
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="is not a TorchScript file"):
        get_workload(str(junk), sample_shape=(8,))
    with pytest.raises(ValueError, match="does not exist"):
        get_workload(str(tmp_path / "missing.pt"), sample_shape=(8,))


def test_import_string_module_and_workload() -> None:
    w = get_workload(f"{__name__}:make_scale", example_input=torch.randn(1, 8))
    assert (w.spec.kind, w.spec.target, w.sample_shape) == ("import", f"{__name__}:make_scale", (8,))
    x = torch.randn(2, 8)
    with torch.inference_mode():
        assert torch.equal(w.build()(x), Scale().eval()(x))
    from_workload = get_workload(f"{__name__}:make_scale_workload", width=8)
    assert from_workload.sample_shape == (8,) and from_workload.spec.options_dict == {"width": 8}
    with pytest.raises(ValueError, match="pass example_input="):
        get_workload(f"{__name__}:make_scale")
    with pytest.raises(ValueError, match="cannot import 'no_such_module:f'"):
        get_workload("no_such_module:f")


def test_torchscript_option_traces_any_workload() -> None:
    eager = get_workload("mlp")
    ts = get_workload("mlp", torchscript=True)
    assert ts.spec.kind == "torchscript" and ts.name == "mlp[torchscript]"
    assert (ts.sample_shape, ts.dtype) == (eager.sample_shape, eager.dtype)
    x = eager.example_input(5)
    with torch.inference_mode():
        assert torch.allclose(ts.build()(x), eager.build()(x), atol=1e-6)


def test_non_model_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot make a workload from int"):
        get_workload(3)


@pytest.mark.slow
def test_user_modules_rebuild_identically_in_a_spawned_process() -> None:
    class Local(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.linear(x))

    x = torch.randn(4, 8)
    for module in (Scale(), Local()):
        w = get_workload(module, example_input=x)
        with torch.inference_mode():
            here = module.eval()(x)
        there = run_in_spawned(w.spec, x)
        assert torch.equal(here, there), w.spec.kind


def test_building_a_zoo_model_leaves_the_callers_rng_alone() -> None:
    """Issue 8 item 8: the zoo builders called torch.manual_seed(0) on the caller's global RNG."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_workload("mlp").build()
    torch.testing.assert_close(torch.rand(3), expected)


def test_get_workload_imports_from_the_workloads_package_and_errors_need_no_python() -> None:
    """Regression (issue 9 #9): `from packrat_lab.workloads import get_workload` failed; the error named a Python call."""
    from packrat_lab.workloads import get_workload as from_package

    with pytest.raises(ValueError, match="unknown model 'resnet51'") as info:
        from_package("resnet51")
    assert "get_workload(" not in str(info.value) and "valid: " in str(info.value)


def test_a_workload_recipe_file_rebuilds_the_same_workload(tmp_path: Path) -> None:
    """How the Lab hands any model (here a zoo model with options) to its `packrat-lab serve` process."""
    from packrat_lab.ui.remote import model_argument
    from packrat_lab.workloads import get_workload

    assert model_argument("mlp", tmp_path) == "mlp"
    assert model_argument(get_workload("mlp"), tmp_path) == "mlp"
    custom = get_workload("mlp", width=32)
    path = model_argument(custom, tmp_path)
    assert path.endswith(".workload.json")
    again = get_workload(path)
    assert again.spec == custom.spec and again.name == custom.name
    (tmp_path / "bad.workload.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read workload recipe"):
        get_workload(str(tmp_path / "bad.workload.json"))
