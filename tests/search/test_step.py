"""The training step: speed-up options, the eager step, and the CUDA-graph step's equivalence."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cse_nets import build_network
from search.data import load_dataset
from search.driver.config import parse_config
from search.training import TrainConfig, make_optimizer, train_model
from search.training.step import (
    GRAPH_WARMUP_STEPS,
    NO_SPEEDUPS,
    GraphStep,
    Speedups,
    eager_step,
    make_step,
    set_learning_rate,
)
from space import preset

NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: CUDA graphs exist only there")
CPU = torch.device("cpu")


def test_speedups_default_off_and_checked() -> None:
    assert Speedups(cuda_graphs=False, compile_min_epochs=0, batch_scale=1) == NO_SPEEDUPS
    with pytest.raises(ValueError, match="batch-scale"):
        Speedups(batch_scale=0)
    with pytest.raises(ValueError, match="compile-min-epochs"):
        Speedups(compile_min_epochs=-1)


def test_which_runs_capture_or_compile() -> None:
    cuda = torch.device("cuda")
    both = Speedups(cuda_graphs=True, compile_min_epochs=10)
    assert both.captures(cuda, epochs=2) and not both.compiles(2)
    assert both.compiles(10) and not both.captures(cuda, epochs=10)  # compile wins
    assert not both.captures(CPU, epochs=2)  # the CPU path stays eager
    assert not Speedups().compiles(1000)


def test_batch_scale_scales_batch_and_lr_together() -> None:
    scaled = Speedups(batch_scale=4).scale_batch(TrainConfig(batch_size=128, lr=0.1))
    assert (scaled.batch_size, scaled.lr) == (512, pytest.approx(0.4))
    assert NO_SPEEDUPS.scale_batch(TrainConfig()) == TrainConfig()


def test_set_learning_rate_fills_a_tensor_lr_in_place() -> None:
    net = nn.Linear(2, 2)
    lr = torch.tensor(0.1)
    optimizer = torch.optim.SGD([{"params": net.parameters(), "lr": lr}], lr=0.1)
    set_learning_rate(optimizer, 0.05)
    assert optimizer.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.05)
    plain = torch.optim.SGD(net.parameters(), lr=0.1)
    set_learning_rate(plain, 0.02)
    assert plain.param_groups[0]["lr"] == 0.02


def test_search_flags_reach_the_speedups() -> None:
    base = ["--dataset", "synthetic"]
    assert parse_config(base).gpus_per_trial is None  # auto
    assert parse_config([*base, "--gpus-per-trial", "auto"]).gpus_per_trial is None
    assert parse_config([*base, "--gpus-per-trial", "0.25"]).gpus_per_trial == 0.25
    assert parse_config(base).speedups == NO_SPEEDUPS
    on = parse_config([*base, "--cuda-graphs", "--compile-min-epochs", "10", "--batch-scale",
                       "2"])
    assert on.speedups == Speedups(cuda_graphs=True, compile_min_epochs=10, batch_scale=2)
    off = parse_config([*base, "--cuda-graphs", "--batch-scale", "2", "--no-gpu-speedups"])
    assert off.speedups == NO_SPEEDUPS and not off.gpu_speedups
    with pytest.raises(ValueError, match="batch-scale"):
        parse_config([*base, "--batch-scale", "0"])


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x.float() / 255), y)


def test_cpu_gets_the_eager_step_whatever_the_speedups() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    all_on = Speedups(cuda_graphs=True, compile_min_epochs=1, batch_scale=2)
    step = make_step(net, optimizer, _loss, device=CPU, epochs=5, speedups=all_on)
    assert not isinstance(step, GraphStep)
    before = net[1].weight.detach().clone()
    x, y = torch.randint(0, 255, (4, 3, 2, 2), dtype=torch.uint8), torch.tensor([0, 1, 2, 0])
    loss = step(x, y, 0.1)
    assert loss.ndim == 0 and not loss.requires_grad
    assert not torch.equal(before, net[1].weight)


def test_cpu_training_is_unchanged_by_speedups() -> None:
    splits = load_dataset("synthetic", val_fraction=0.1, input_size=16)
    config = TrainConfig(epochs=1, batch_size=32, subset=0.1, device="cpu")

    def weights(speedups: Speedups) -> list[torch.Tensor]:
        net = build_network(preset("paper-mix"), splits.info.shape, seed=0)
        train_model(net, splits, config, speedups=speedups)
        return [p.detach() for p in net.parameters()]

    all_on = Speedups(cuda_graphs=True, compile_min_epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(weights(NO_SPEEDUPS), weights(all_on),
                                                  strict=True))


# --- CUDA only --------------------------------------------------------------------------

def _cuda_pair(precision: str) -> tuple[nn.Module, nn.Module, TrainConfig, object]:
    splits = load_dataset("synthetic", input_size=32)
    config = TrainConfig(batch_size=32, device="cuda", precision=precision)
    net = build_network(preset("paper-mix"), splits.info.shape, seed=0)
    net = net.to("cuda", memory_format=torch.channels_last)
    return net, copy.deepcopy(net), config, splits


@NEEDS_CUDA
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-4), ("bf16", 2e-2)])
def test_graph_step_trains_like_the_eager_step(precision: str, tolerance: float,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    eager_net, graph_net, config, splits = _cuda_pair(precision)
    if precision == "fp32":  # full fp32, so that only the order of additions can differ
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    autocast = precision == "bf16"

    def loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast,
                            cache_enabled=False):
            logits = net((x.float() / 255).contiguous(memory_format=torch.channels_last))
        return F.cross_entropy(logits.float(), y, label_smoothing=0.1)

    # the same graph-safe optimiser both ways: only capture and replay differ
    eager = eager_step(eager_net, make_optimizer(eager_net, config, graph_safe=True), loss)
    graph = GraphStep(graph_net, make_optimizer(graph_net, config, graph_safe=True), loss)
    images, labels = (t.cuda() for t in splits.train)
    losses = []
    for index in range(GRAPH_WARMUP_STEPS + 4):  # warm-up, capture, then replays
        x, y = images[index * 32:(index + 1) * 32], labels[index * 32:(index + 1) * 32]
        lr = 0.1 / (index + 1)  # a changing lr must reach the captured optimiser
        losses.append((eager(x, y, lr).item(), graph(x, y, lr).item()))
    for a, b in losses:
        assert a == pytest.approx(b, rel=tolerance, abs=tolerance)
    for p, q in zip(eager_net.state_dict().values(), graph_net.state_dict().values(),
                    strict=True):
        if p.is_floating_point():
            assert torch.allclose(p, q, rtol=tolerance, atol=tolerance)
        else:
            assert torch.equal(p, q)  # BatchNorm's step counters
    with pytest.raises(ValueError, match="captured batches"):
        graph(images[:16], labels[:16], 0.1)


@NEEDS_CUDA
def test_train_model_with_cuda_graphs_matches_eager_accuracy() -> None:
    splits = load_dataset("synthetic", input_size=32)
    config = TrainConfig(epochs=2, batch_size=64, device="cuda", precision="fp32")

    def accuracy(speedups: Speedups) -> float:
        net = build_network(preset("paper-mix"), splits.info.shape, seed=0)
        return train_model(net, splits, replace(config), speedups=speedups).val_accuracy

    assert accuracy(Speedups(cuda_graphs=True)) == pytest.approx(accuracy(NO_SPEEDUPS),
                                                                 abs=0.03)
