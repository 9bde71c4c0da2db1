"""torch.export `.pt2` files and local Hugging Face directories work wherever a zoo name does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from packrat_lab.workloads.base import WorkloadSpec, build_from_spec
from packrat_lab.workloads.registry import get_workload

transformers = pytest.importorskip("transformers")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()


def _export(model: torch.nn.Module, x: torch.Tensor, path: Path, *, dynamic: bool = True) -> Path:
    shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)  # type: ignore[no-any-return]

    torch.export.save(torch.export.export(Wrapped(), (x,), dynamic_shapes=shapes), str(path))
    return path


@pytest.fixture
def pt2(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = _mlp()
    return _export(model, torch.randn(2, 8), tmp_path / "small-mlp.pt2"), model


@pytest.fixture
def bert_dir(tmp_path: Path) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = transformers.BertConfig(
            vocab_size=99,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
        transformers.BertModel(config).save_pretrained(tmp_path / "tiny-bert")
    return tmp_path / "tiny-bert"


@pytest.fixture
def resnet_dir(tmp_path: Path) -> Path:
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=5)
    transformers.ResNetForImageClassification(config).save_pretrained(tmp_path / "tiny-resnet")
    return tmp_path / "tiny-resnet"


def test_pt2_describes_its_input_and_rebuilds_from_its_spec(pt2: tuple[Path, torch.nn.Module]) -> None:
    path, model = pt2
    workload = get_workload(str(path))
    assert (workload.name, workload.sample_shape, workload.dtype) == ("small-mlp", (8,), "float32")
    assert workload.spec.kind == "exported"
    rebuilt = build_from_spec(WorkloadSpec.from_dict(json.loads(json.dumps(workload.spec.to_dict()))))
    for batch in (1, 3):  # the batch the pool's dynamic batcher forms varies
        x = workload.example_input(batch)
        torch.testing.assert_close(rebuilt(x), model(x))
    assert get_workload(path).spec == workload.spec  # a Path works too


def test_pt2_with_token_ids_is_int64(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(50, 4), torch.nn.Flatten()).eval()
    path = _export(model, torch.randint(0, 50, (2, 6)), tmp_path / "emb.pt2")
    workload = get_workload(str(path), high=50)
    assert (workload.sample_shape, workload.dtype, workload.spec.high) == ((6,), "int64", 50)
    x = workload.example_input(2)
    torch.testing.assert_close(workload.build()(x), model(x))


def test_pt2_with_a_fixed_batch_is_refused_with_the_export_recipe(tmp_path: Path) -> None:
    path = _export(_mlp(), torch.randn(2, 8), tmp_path / "fixed.pt2", dynamic=False)
    with pytest.raises(ValueError, match=r"fixed batch of 2; export a dynamic batch: .*Dim\('batch'\)"):
        get_workload(str(path))


def test_file_that_is_not_an_exported_program_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "junk.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="torch.export.load can read"):
        get_workload(str(bad))
    with pytest.raises(ValueError, match="does not exist"):
        get_workload(str(tmp_path / "missing.pt2"))


def test_hf_text_directory_uses_saved_weights_and_token_ids(bert_dir: Path) -> None:
    workload = get_workload(str(bert_dir), seq_len=16)
    assert (workload.name, workload.sample_shape, workload.dtype, workload.spec.high) == (
        "tiny-bert",
        (16,),
        "int64",
        99,
    )
    assert get_workload(str(bert_dir)).sample_shape == (64,)  # default 128, capped by max_position_embeddings
    saved = transformers.BertModel.from_pretrained(bert_dir, local_files_only=True).eval()
    x = workload.example_input(2)
    with torch.no_grad():
        torch.testing.assert_close(workload.build()(x), saved(input_ids=x).last_hidden_state)


def test_hf_image_directory_uses_its_head_and_image_size(resnet_dir: Path) -> None:
    workload = get_workload(str(resnet_dir), image_size=32)
    assert (workload.sample_shape, workload.dtype) == ((3, 32, 32), "float32")
    with torch.no_grad():
        out = workload.build()(workload.example_input(2))
    assert out.shape == (2, 5)  # ResNetForImageClassification's logits, from config.architectures


def test_hf_directory_errors_are_one_line_with_an_example(bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"seq_len must be 1..64 .*seq_len=64"):
        get_workload(str(bert_dir), seq_len=65)
    with pytest.raises(ValueError, match="valid: seq_len=, image_size="):
        get_workload(str(bert_dir), width=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json; save a model with"):
        get_workload(str(tmp_path / "empty"))


@pytest.mark.slow
def test_pool_serves_pt2_and_hf_directory(pt2: tuple[Path, torch.nn.Module], bert_dir: Path) -> None:
    from packrat_lab.serving.pool import Pool

    path, model = pt2
    with Pool(str(path), "1x1x2", announce=False) as pool:
        x = torch.randn(3, 8)
        torch.testing.assert_close(pool.infer(x), model(x).detach())
        torch.testing.assert_close(pool.submit(x[0]).result(timeout=60), model(x[:1])[0].detach())
    with Pool(str(bert_dir), "1x1x2", announce=False) as pool:
        x = pool.workload.example_input(2)
        saved = transformers.BertModel.from_pretrained(bert_dir, local_files_only=True).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                pool.infer(x), saved(input_ids=x).last_hidden_state, atol=1e-4, rtol=1e-4
            )


@pytest.mark.slow
def test_cli_profiles_pt2_and_hf_directory(
    pt2: tuple[Path, torch.nn.Module], bert_dir: Path, tmp_path: Path
) -> None:
    from packrat_lab.profiling.table import load_profile
    from packrat_lab.workloads.registry import workload_of_profile

    for model, extra in ((pt2[0], []), (bert_dir, ["--seq-len", "8"])):
        out = tmp_path / f"{model.stem}.packrat.json"
        cmd = [
            sys.executable,
            "-m",
            "packrat_lab.cli",
            "profile",
            str(model),
            "--threads",
            "1",
            "--batch",
            "1,2",
            "--settings",
            "default",
            "--point-time",
            "0.5",
            "-o",
            str(out),
            *extra,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, done.stderr
        profile = load_profile(out)
        assert sorted(profile.batches) == [1, 2]
        recorded = workload_of_profile(profile)
        assert recorded.spec == get_workload(str(model), **({"seq_len": 8} if extra else {})).spec
