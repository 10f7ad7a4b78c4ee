"""Evaluation cache: an architecture the study has already trained is not trained again.

Categorical samplers propose architectures that were already trained: the same network,
as :func:`space.network_key` sees it on the study's input (proposals that differ only in
fields the network does not use, such as the ``r`` of a CSE stage at 2x2, are the same
network). Training is deterministic for a seed, and one study holds one
training configuration and data split (``search.driver.tune`` refuses a rerun with others), so the
earlier trial's values *are* the duplicate's values.

The cache's scope is the study and its state is the study: :meth:`EvaluationCache.
from_trials` rebuilds it from the complete trials on every (re)start, the presets' trials
included. A served duplicate is a COMPLETE trial with the earlier trial's values and user
attributes, plus ``cached_from`` (the number of the trial that was trained), and its own
architecture and timings; it costs no training and does not count towards ``--trials``
(``search.driver.progress.budget_trials``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from search.study.schema import (
    ARCH,
    ARCH_STR,
    CACHED_FROM,
    PRESET,
    TRAIN_SECONDS,
    WALL_SECONDS,
    is_cached,
)
from space import Arch, network_key

__all__ = ["CachedEvaluation", "EvaluationCache"]

# Attributes of the trained trial that do not describe the duplicate: its architecture as
# proposed (the same network, maybe not the same fields), how long the training took and
# whether it was an enqueued preset (the report labels presets by it).
_OWN_ATTRS = (ARCH, ARCH_STR, PRESET, TRAIN_SECONDS, WALL_SECONDS)


@dataclass(frozen=True)
class CachedEvaluation:
    """What a trained trial scored, to give to the architecture's duplicates."""

    number: int  # the trial that was trained
    values: tuple[float, ...]  # in the study's objective order
    user_attrs: Mapping[str, Any]

    def served_attrs(self) -> dict[str, Any]:
        """User attributes of a duplicate, but for its :data:`~search.study.schema.WALL_SECONDS`
        (its own serving time)."""
        attrs = {k: v for k, v in self.user_attrs.items() if k not in _OWN_ATTRS}
        return {**attrs, CACHED_FROM: self.number, TRAIN_SECONDS: 0.0}


class EvaluationCache:
    """The network an architecture builds on ``input_size`` -> the first complete trial
    that trained it."""

    def __init__(self, input_size: int) -> None:
        self._input_size = input_size
        self._entries: dict[tuple[Arch, tuple[int, ...]], CachedEvaluation] = {}

    @classmethod
    def from_trials(cls, trials: Iterable[FrozenTrial], input_size: int) -> EvaluationCache:
        """The cache of a study's trials: every complete, trained one with an architecture."""
        cache = cls(input_size)
        for trial in sorted(trials, key=lambda t: t.number):
            if (trial.state == TrialState.COMPLETE and not is_cached(trial)
                    and isinstance(trial.user_attrs.get(ARCH), str)):
                cache.add(Arch.from_json(trial.user_attrs[ARCH]), trial.number,
                          trial.values, trial.user_attrs)
        return cache

    def add(self, arch: Arch, number: int, values: Sequence[float],
            user_attrs: Mapping[str, Any]) -> None:
        """Remember a trained trial; the first one trained stays the source of its network."""
        self._entries.setdefault(network_key(arch, self._input_size),
                                 CachedEvaluation(number, tuple(values), dict(user_attrs)))

    def lookup(self, arch: Arch) -> CachedEvaluation | None:
        return self._entries.get(network_key(arch, self._input_size))

    def __len__(self) -> int:
        return len(self._entries)
