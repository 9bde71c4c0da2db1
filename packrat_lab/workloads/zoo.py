"""Built-in models, built from their architecture with random weights (no downloads)."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["ZOO", "ZooEntry", "build_zoo_model", "quiet_transformers"]


@dataclass(frozen=True)
class ZooEntry:
    """How to build one zoo model and what one input sample looks like."""

    build: Callable[..., torch.nn.Module]
    sample_shape: Callable[..., tuple[int, ...]]
    dtype: str = "float32"
    high: int | None = None
    summary: str = ""
    small: bool = False


def _mlp(width: int = 1024, layers: int = 8) -> torch.nn.Module:
    import torch

    torch.manual_seed(0)
    blocks: list[torch.nn.Module] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*blocks)


def _tiny_cnn(image: int = 32) -> torch.nn.Module:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )


@contextlib.contextmanager
def quiet_transformers(*, import_it: bool = True) -> Iterator[None]:
    """Silence transformers' advisory logging and warnings while building, then restore them."""
    if not import_it and "transformers" not in sys.modules:  # nothing to silence
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)


def _one_tensor(model: torch.nn.Module, field: str) -> torch.nn.Module:
    """Wrap a transformers model so forward takes one tensor and returns one output field."""
    import torch

    class OneTensor(torch.nn.Module):
        """One tensor in, the model output's `field` out (what workers and tracing expect)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return getattr(self.model(x), field)  # type: ignore[no-any-return]

    OneTensor.__name__ = OneTensor.__qualname__ = f"{type(model).__name__}To{field.title().replace('_', '')}"
    return OneTensor()


def _resnet50(num_labels: int = 1000) -> torch.nn.Module:
    import torch

    with quiet_transformers():
        from transformers import ResNetConfig, ResNetForImageClassification

        torch.manual_seed(0)
        config = ResNetConfig(num_labels=num_labels)  # type: ignore[call-arg]
        model = ResNetForImageClassification(config)
    return _one_tensor(model, "logits")


def _inception_v3(num_classes: int = 1000) -> torch.nn.Module:
    import torch

    from packrat_lab.workloads.inception import inception_v3

    torch.manual_seed(0)
    return inception_v3(num_classes)


def _bert(seq_len: int = 128) -> torch.nn.Module:
    import torch

    with quiet_transformers():
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        model = BertModel(BertConfig(max_position_embeddings=max(512, seq_len)))
    return _one_tensor(model, "pooler_output")


def _gpt2(seq_len: int = 128) -> torch.nn.Module:
    import torch

    with quiet_transformers():
        from transformers import GPT2Config, GPT2Model

        torch.manual_seed(0)
        model = GPT2Model(GPT2Config(n_positions=max(1024, seq_len), use_cache=False))
    return _one_tensor(model, "last_hidden_state")


def _seq_shape(seq_len: int = 128) -> tuple[int, ...]:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        msg = (
            f"seq_len must be a positive integer, got {seq_len!r}; example: get_workload('bert', seq_len=128)"
        )
        raise ValueError(msg)
    return (seq_len,)


BERT_VOCAB = 30522
GPT2_VOCAB = 50257

ZOO: dict[str, ZooEntry] = {
    "resnet50": ZooEntry(
        _resnet50,
        lambda num_labels=1000: (3, 224, 224),
        summary="ResNet-50 (transformers), 224×224 images → logits",
    ),
    "inception_v3": ZooEntry(
        _inception_v3,
        lambda num_classes=1000: (3, 299, 299),
        summary="Inception-v3 (defined here), 299×299 images → logits",
    ),
    "bert": ZooEntry(
        _bert, _seq_shape, "int64", BERT_VOCAB, summary="BERT-base, token ids (seq_len=128) → pooled (768)"
    ),
    "gpt2": ZooEntry(
        _gpt2,
        _seq_shape,
        "int64",
        GPT2_VOCAB,
        summary="GPT-2 small, token ids (seq_len=128) → last hidden state",
    ),
    "mlp": ZooEntry(
        _mlp,
        lambda width=1024, layers=8: (width,),
        summary="8-layer MLP, 1024 wide (ms per batch)",
        small=True,
    ),
    "tiny-cnn": ZooEntry(
        _tiny_cnn,
        lambda image=32: (3, image, image),
        summary="2-conv CNN on 32×32 images (ms per batch)",
        small=True,
    ),
}


def build_zoo_model(name: str, **options: Any) -> torch.nn.Module:
    """Build a zoo model by name with random (seeded) weights, leaving the caller's RNG state as it was."""
    import torch

    entry = ZOO.get(name)
    if entry is None:
        msg = f"unknown model {name!r}; valid: {', '.join(sorted(ZOO))} (example: 'resnet50')"
        raise ValueError(msg)
    with torch.random.fork_rng(devices=[]):  # the builders seed torch's global RNG
        return entry.build(**options)
