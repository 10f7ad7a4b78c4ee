from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from cse_nets import build_network
from search.data import FASHION_MNIST_ENV, Splits, load_dataset
from search.train import main
from search.training import (
    RECIPES,
    EpochStats,
    NonFiniteLossError,
    TrainConfig,
    learning_rate,
    measure_accuracy,
    resolve_device,
    resolve_precision,
    train_model,
)
from search.training.loop import FINITE_CHECK_STEPS
from space import Arch, InputShape, Stage
from tests.search.folders import make_image_folder

TINY = Arch(stages=(Stage("btn", c=8, n=1, s=2, t=2), Stage("cse", c=16, n=1, s=2)),
            stem=8, head=32)
FAST = TrainConfig(batch_size=64, device="cpu")


def _tiny(splits: Splits, seed: int = 0) -> nn.Module:
    info = splits.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_network(TINY, info.shape)


@pytest.fixture(scope="module")
def splits8() -> Splits:
    return load_dataset("synthetic", val_fraction=0.1, input_size=8)


# --- config and schedule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"epochs": 0}, {"epochs": -1}, {"batch_size": 0}, {"lr": 0.0}, {"lr": math.nan},
     {"subset": 0.0}, {"subset": 1.5}, {"schedule": "step"}, {"precision": "fp16"},
     {"optimizer": "lamb"}, {"momentum": 1.0}, {"momentum": 0.0}, {"seed": -1},
     {"seed": 2**32},
     {"label_smoothing": 1.0}, {"epochs": True}, {"ema": 1.0}, {"ema": -0.1},
     {"epochs": 3, "anneal_at": (3,)}, {"epochs": 9, "anneal_at": (3, 1)},
     {"epochs": 9, "anneal_at": (0,)}, {"epochs": 9, "anneal_at": 3}],
)
def test_config_refuses_bad_values(change):
    with pytest.raises(ValueError, match="train config"):
        TrainConfig(**change)


def test_paper_recipe_is_the_papers():
    paper = RECIPES["paper"]
    assert (paper.optimizer, paper.lr, paper.momentum, paper.weight_decay, paper.batch_size) == (
        "sgd", 0.045, 0.9, 4e-5, 16)
    lrs = [learning_rate(paper, step, steps_per_epoch=10) for step in (0, 9, 10, 25)]
    assert lrs == pytest.approx([0.045, 0.045, 0.045 * 0.98, 0.045 * 0.98**2])


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_warm_up_then_decay_towards_zero(schedule):
    config = TrainConfig(epochs=2, lr=0.1, warmup=0.1, schedule=schedule)
    lrs = [learning_rate(config, step, steps_per_epoch=50) for step in range(100)]
    assert lrs[0] == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)
    peak = lrs.index(max(lrs))
    assert peak == 9
    assert all(a <= b for a, b in itertools.pairwise(lrs[:peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[peak:]))
    assert 0 < lrs[-1] < 0.005


def test_annealed_rungs_restart_the_schedule_at_each_rung():
    config = TrainConfig(epochs=9, lr=0.1, warmup=0.1, anneal_at=(1, 3))
    lrs = [learning_rate(config, step, steps_per_epoch=20) for step in range(180)]
    # Each cycle (epochs 0-1, 1-3, 3-9) warms up from near 0 and decays to near 0 again.
    for start, end in ((0, 20), (20, 60), (60, 180)):
        cycle = lrs[start:end]
        assert max(cycle) == pytest.approx(0.1)
        assert cycle[0] < 0.1 and cycle[-1] < 0.1 / (end - start) * 1.5
    plain = [learning_rate(replace(config, anneal_at=()), s, 20) for s in range(180)]
    assert plain[19] > 0.09  # without: epoch 1 ends just after the warm-up, at the peak
    # The first cycle is a 1-epoch run's schedule: the first rung scores that run's model.
    alone = replace(config, epochs=1, anneal_at=())
    assert lrs[:20] == [learning_rate(alone, step, 20) for step in range(20)]
    # A study's JSON gives a list back; it is the same config.
    assert TrainConfig(epochs=9, anneal_at=[1, 3]) == TrainConfig(epochs=9, anneal_at=(1, 3))


def test_resolve_device_and_precision():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


# --- training ------------------------------------------------------------------------------


def test_same_seed_same_weights_on_cpu(splits8):
    config = replace(FAST, subset=0.2, seed=5)

    def weights(config: TrainConfig) -> dict[str, torch.Tensor]:
        model = _tiny(splits8)
        train_model(model, splits8, config)
        return model.state_dict()

    first, second = weights(config), weights(config)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = weights(replace(config, seed=6))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_ema_scores_and_keeps_the_average_without_changing_the_training(splits8):
    config = replace(FAST, batch_size=32, subset=0.2, seed=3)
    raw, averaged = _tiny(splits8), _tiny(splits8)
    train_model(raw, splits8, config)
    result = train_model(averaged, splits8, replace(config, ema=0.9))
    # The average lags the raw weights it follows, so the two runs end apart ...
    assert not all(torch.allclose(a, b) for a, b in zip(raw.parameters(),
                                                        averaged.parameters(), strict=True))
    # ... and what validation scored is the model that is handed back.
    again = measure_accuracy(averaged, *splits8.val, splits8.info, device="cpu")
    assert again == result.val_accuracy


class _NaNAfter(nn.Module):
    """Turns the logits into NaN (a diverged network) from its ``start``-th call on."""

    def __init__(self, model: nn.Module, start: int) -> None:
        super().__init__()
        self.model, self.calls, self.start = model, 0, start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.model(x)
        return out * math.nan if self.calls >= self.start else out


@pytest.mark.parametrize("start", [1, 3])
def test_nan_loss_is_an_error(splits8, start):
    model = _NaNAfter(_tiny(splits8), start)
    with pytest.raises(NonFiniteLossError, match="loss became nan in epoch 1"):
        train_model(model, splits8, replace(FAST, batch_size=32, subset=0.2))


def test_nan_is_caught_within_an_epoch(splits8):
    model = _NaNAfter(_tiny(splits8), 1)
    with pytest.raises(NonFiniteLossError, match="within its first 25 steps"):
        train_model(model, splits8, replace(FAST, batch_size=8, subset=0.5))  # 100 steps
    assert model.calls == FINITE_CHECK_STEPS


def test_tiny_run_learns_and_reports_every_epoch():
    splits = load_dataset("synthetic", val_fraction=0.1, input_size=16)
    seen: list[EpochStats] = []
    model = _tiny(splits)
    result = train_model(model, splits, replace(FAST, epochs=2), on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2] and result.history == tuple(seen)
    assert all(s.images_per_second > 0 and s.seconds > 0 and s.train_loss > 0 for s in seen)
    assert result.val_accuracy == seen[-1].val_accuracy
    assert result.best_val_accuracy == max(s.val_accuracy for s in seen)
    assert result.device == "cpu" and result.train_seconds > 0
    assert result.val_accuracy > 0.5  # chance is 0.1
    model.train()
    test = measure_accuracy(model, *splits.test, splits.info, device="cpu", batch_size=128)
    assert 0.5 < test <= 1 and model.training  # evaluate restores the mode


def test_without_validation_accuracy_is_none(splits8):
    result = train_model(_tiny(splits8), splits8.merged(), replace(FAST, subset=0.1))
    assert result.val_accuracy is None and result.best_val_accuracy is None
    assert result.history[0].val_accuracy is None


# --- command line --------------------------------------------------------------------------


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(TINY.to_json())
    return path


def _bad_args(tmp_path, arch_file):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    not_arch = tmp_path / "not_arch.json"
    not_arch.write_text('{"format": 1, "stages": []}')
    tiny = ["--arch", str(arch_file)]
    return {
        "unknown preset": ["--arch", "mobilenetv9", "--dataset", "synthetic"],
        "unknown dataset": [*tiny, "--dataset", "imagenet"],
        "bad json": ["--arch", str(bad_json), "--dataset", "synthetic"],
        "not an arch": ["--arch", str(not_arch), "--dataset", "synthetic"],
        "arch is a folder": ["--arch", str(tmp_path), "--dataset", "synthetic"],
        "zero epochs": [*tiny, "--dataset", "synthetic", "--epochs", "0"],
        "negative epochs": [*tiny, "--dataset", "synthetic", "--epochs", "-2"],
        "subset zero": [*tiny, "--dataset", "synthetic", "--subset", "0"],
        "subset above one": [*tiny, "--dataset", "synthetic", "--subset", "1.01"],
        "val fraction one": [*tiny, "--dataset", "synthetic", "--val-fraction", "1"],
        "bad device": [*tiny, "--dataset", "synthetic", "--device", "quantum"],
        "input too small": ["--arch", "paper-mix", "--dataset", "synthetic", "--input-size", "2"],
        "missing dataset": [*tiny, "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)],
        "seed beyond 32 bits": [*tiny, "--dataset", "synthetic", "--seed", str(10**20)],
    }


@pytest.mark.parametrize("case", [
    "unknown preset", "unknown dataset", "bad json", "not an arch", "arch is a folder",
    "zero epochs", "negative epochs", "subset zero", "subset above one", "val fraction one",
    "bad device", "input too small", "missing dataset", "seed beyond 32 bits",
])
def test_cli_bad_input_is_one_line_and_exit_2(case, tmp_path, arch_file, capsys, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "no-fashion-here"))
    assert main(_bad_args(tmp_path, arch_file)[case]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_refuses_an_empty_test_split_before_training(tmp_path, arch_file, capsys):
    folder = make_image_folder(tmp_path / "shapes", 2)  # 20% of 2 per class rounds to none
    assert main(["--arch", str(arch_file), "--dataset", f"folder:{folder}", "--device", "cpu",
                 "--data-dir", str(tmp_path / "data")]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # not a line of training
    error = err.splitlines()[-1]  # after the folder's progress bars
    assert error.startswith("error: ") and err.count("error") == 1, err
    assert "test split is empty" in error


def test_cli_trains_and_saves(tmp_path, arch_file, capsys):
    out_dir = tmp_path / "run"
    argv = ["--arch", str(arch_file), "--dataset", "synthetic", "--input-size", "8",
            "--epochs", "1", "--subset", "0.2", "--batch-size", "32", "--device", "cpu",
            "--save", str(out_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "val acc" in out and "img/s" in out and "test acc" in out
    assert Arch.from_json((out_dir / "arch.json").read_text()) == TINY
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["input_shape"] == [3, 8, 8] and metrics["train_config"]["subset"] == 0.2
    assert 0 <= metrics["test_accuracy"] <= 1 and len(metrics["history"]) == 1
    model = build_network(TINY, InputShape(3, 8, 10))
    model.load_state_dict(torch.load(out_dir / "weights.pt", weights_only=True))
