"""One optimiser step of training: eager, or on CUDA captured once as a graph or compiled.

Small networks at 32x32 leave a GPU idle between kernel launches: a paper-mix step is about a
thousand small kernels, each launched from Python. The speed-ups here remove that launch cost
and are all off by default until a GPU run (``benchmarks/gpu_check.sh``) has measured them:

* ``cuda_graphs``: forward, loss, backward and optimiser step captured as one CUDA graph after
  a few eager warm-up steps, then replayed for every batch (capture costs well under a second
  per architecture). The optimiser is made graph-safe: its learning rate is a device tensor
  (updated in place before each replay) and SGD runs fused, AdamW ``capturable``.
* ``compile_min_epochs``: ``torch.compile(mode="reduce-overhead")`` (Inductor kernels and its
  own CUDA graphs) for trials of at least that many epochs, which repay its minute of
  compilation per architecture; such trials do not also use ``cuda_graphs``.
* ``batch_scale``: larger batches with the learning rate scaled linearly (Goyal et al. 2017;
  the recipe's warm-up keeps the first steps stable).

The CPU path is the eager step, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from search.training.config import TrainConfig
from space.checks import non_negative_int, positive_int

__all__ = ["GRAPH_WARMUP_STEPS", "NO_SPEEDUPS", "GraphStep", "LossFn", "Speedups", "TrainStep",
           "eager_step", "make_step", "set_learning_rate"]

# loss(model, uint8 images, labels) -> scalar loss; a step: (images, labels, lr) -> loss.
LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
TrainStep = Callable[[Tensor, Tensor, float], Tensor]
# Eager steps before capture: cuDNN picks its kernels and the optimiser creates its state
# (momentum buffers) outside the graph, as PyTorch's CUDA-graph notes require.
GRAPH_WARMUP_STEPS = 3


@dataclass(frozen=True)
class Speedups:
    """GPU speed-ups of the training step; each is off by default (unmeasured)."""

    cuda_graphs: bool = False
    compile_min_epochs: int = 0  # torch.compile trials with at least this many epochs; 0: never
    batch_scale: int = 1  # batch size x this, peak learning rate x this

    def __post_init__(self) -> None:
        non_negative_int(self.compile_min_epochs, "compile-min-epochs")
        positive_int(self.batch_scale, "batch-scale")

    def compiles(self, epochs: int) -> bool:
        return 0 < self.compile_min_epochs <= epochs

    def captures(self, device: torch.device, epochs: int) -> bool:
        """Whether a run on ``device`` of ``epochs`` epochs is captured as a CUDA graph."""
        return device.type == "cuda" and self.cuda_graphs and not self.compiles(epochs)

    def scale_batch(self, config: TrainConfig) -> TrainConfig:
        """``config`` with batch size and peak learning rate scaled by ``batch_scale``."""
        return replace(config, batch_size=config.batch_size * self.batch_scale,
                       lr=config.lr * self.batch_scale)


NO_SPEEDUPS = Speedups()


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr; a device-tensor lr (graph-safe optimisers) is filled in place."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def eager_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: LossFn) -> TrainStep:
    """The plain step: set the lr, forward, backward, update; returns the detached loss."""
    def step(images: Tensor, labels: Tensor, lr: float) -> Tensor:
        set_learning_rate(optimizer, lr)
        value = loss(model, images, labels)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        return value.detach()
    return step


class GraphStep:
    """The whole step captured as one CUDA graph, replayed for every batch of the run.

    The first :data:`GRAPH_WARMUP_STEPS` calls train eagerly on a side stream; the next
    captures the step (capture records without running) and replays it. Later calls copy
    the batch into the captured input buffers and replay. Every batch of a run has the same
    shape (``shuffled_batches`` serves full batches only); another shape is a ValueError.
    The returned loss is the graph's own output: read it before the next call.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss: LossFn) -> None:
        if not all(isinstance(g["lr"], Tensor) for g in optimizer.param_groups):
            raise ValueError("GraphStep needs a graph-safe optimiser (device-tensor lr)")
        self._model, self._optimizer, self._loss_fn = model, optimizer, loss
        self._eager = eager_step(model, optimizer, loss)
        self._eager_steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._images = self._labels = self._loss = torch.empty(0)

    def __call__(self, images: Tensor, labels: Tensor, lr: float) -> Tensor:
        if self._graph is None and self._eager_steps < GRAPH_WARMUP_STEPS:
            self._eager_steps += 1
            return self._warm_up(images, labels, lr)
        if self._graph is None:
            self._capture(images, labels)
        if images.shape != self._images.shape or labels.shape != self._labels.shape:
            raise ValueError(f"GraphStep captured batches of {tuple(self._images.shape)}, "
                             f"got {tuple(images.shape)}")
        self._images.copy_(images)
        self._labels.copy_(labels)
        set_learning_rate(self._optimizer, lr)
        self._graph.replay()  # type: ignore[union-attr]
        return self._loss

    def _warm_up(self, images: Tensor, labels: Tensor, lr: float) -> Tensor:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss = self._eager(images, labels, lr)
        torch.cuda.current_stream().wait_stream(side)
        return loss

    def _capture(self, images: Tensor, labels: Tensor) -> None:
        self._images, self._labels = images.clone(), labels.clone()
        # Backward then allocates the gradients inside the graph's memory pool, and every
        # replay overwrites them: no zero_grad inside the graph, and none after it.
        self._optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss = self._loss_fn(self._model, self._images, self._labels)
            loss.backward()
            self._optimizer.step()
        self._loss = loss.detach()
        self._graph = graph


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: LossFn, *,
              device: torch.device, epochs: int, speedups: Speedups) -> TrainStep:
    """The step a run of ``epochs`` epochs on ``device`` uses under ``speedups``.

    A captured step needs the optimiser built graph-safe (``Speedups.captures``).
    """
    if device.type == "cuda" and speedups.compiles(epochs):
        return eager_step(torch.compile(model, mode="reduce-overhead"), optimizer, loss)
    if speedups.captures(device, epochs):
        return GraphStep(model, optimizer, loss)
    return eager_step(model, optimizer, loss)
