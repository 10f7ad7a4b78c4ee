from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import optuna
import pytest

from space import (
    CHOICES,
    MIN_FEATURE_SIZE,
    PRESETS,
    Arch,
    Stage,
    arch_from_params,
    block_output_size,
    preset,
    preset_params,
    sample_arch,
    stage_resolutions,
)
from space.sample import MIN_HALVINGS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _final_size(arch: Arch, input_size: int) -> int:
    size = stage_resolutions(arch, input_size)[-1][-1]
    last = arch.stages[-1]
    return block_output_size(last.op, last.s if last.n == 1 else 1, size)


def _halvings(arch: Arch) -> int:
    return sum(stage.s == 2 for stage in arch.stages)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("input_size", [16, 28, 32, 64])
def test_presets_are_points_of_the_space(name: str, input_size: int) -> None:
    params = preset_params(preset(name), input_size)
    assert set(params) == set(CHOICES)
    assert arch_from_params(params, input_size) == preset(name)


def test_presets_too_deep_for_a_tiny_input_are_rejected() -> None:
    with pytest.raises(ValueError, match="not in the space for a 8x8 input"):
        preset_params(preset("paper-mix"), 8)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        (Arch(stages=(Stage(op="btn", c=16, n=1, s=1),)), "has 1 stages"),
        (replace(preset("paper-mix"), stem=40), "stem must be one of"),
        (Arch(stages=tuple(Stage(op="btn", c=c, n=1, s=1, t=5)
                           for c in (16, 24, 32, 64, 96, 160, 320))), "t must be one of"),
    ],
)
def test_preset_params_rejects_archs_outside_the_space(arch: Arch, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        preset_params(arch, 32)


@pytest.mark.parametrize("input_size", [4, 8, 16, 28, 32, 64])
@pytest.mark.parametrize("sampler", ["random", "nsga2"])
def test_sampled_archs_fit_their_input(input_size: int, sampler: str) -> None:
    samplers = {
        "random": optuna.samplers.RandomSampler(seed=input_size),
        "nsga2": optuna.samplers.NSGAIISampler(population_size=4, seed=input_size),
    }
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=samplers[sampler])
    for _ in range(40):
        trial = study.ask()
        arch = sample_arch(trial, input_size)
        assert set(trial.params) == set(CHOICES)  # fixed length: every trial, every field
        assert _final_size(arch, input_size) >= min(MIN_FEATURE_SIZE, input_size)
        assert arch.head % arch.stages[-1].c == 0
        study.tell(trial, [float(arch.stem), float(arch.head)])
    # NSGA-II and multivariate TPE learn from the parameters common to all trials: all of them.
    intersection = optuna.search_space.intersection_search_space(study.get_trials())
    assert set(intersection) == set(CHOICES)


def test_strides_give_between_three_halvings_and_what_fits() -> None:
    all_ones = {name: values[0] for name, values in CHOICES.items()}
    all_twos = {**all_ones, **{f"stage{i}.s": 2 for i in range(7)}}
    assert _halvings(arch_from_params(all_ones, 32)) == MIN_HALVINGS  # forced at the end
    assert [s.s for s in arch_from_params(all_ones, 32).stages][-MIN_HALVINGS:] == [2, 2, 2]
    # 32 -> 16 -> 8 -> 4 -> 2: a fifth halving would leave a 1x1 map.
    assert _halvings(arch_from_params(all_twos, 32)) == 4
    assert _halvings(arch_from_params(all_twos, 64)) == 5
    assert _halvings(arch_from_params(all_twos, 2)) == 0


def test_unused_fields_take_stage_defaults() -> None:
    params = preset_params(preset("paper-mix"), 32)
    noisy = {**params, "stage0.r": 32, "stage0.cap": 4, "stage6.t": 6}
    assert arch_from_params(noisy, 32) == preset("paper-mix")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"stage3.op": "conv"}, "stage3.op must be one of"),
        ({"stage5.c": 100}, "stage5.c must be one of"),
        ({"head_ratio": 5}, "head_ratio must be one of"),
    ],
)
def test_arch_from_params_rejects_values_outside_the_choices(change: dict, match: str) -> None:
    params = {**preset_params(preset("mobilenetv2"), 32), **change}
    with pytest.raises(ValueError, match=match):
        arch_from_params(params, 32)


def test_arch_from_params_rejects_missing_params_and_bad_sizes() -> None:
    params = preset_params(preset("mobilenetv2"), 32)
    with pytest.raises(ValueError, match="missing act"):
        arch_from_params({k: v for k, v in params.items() if k != "act"}, 32)
    with pytest.raises(ValueError, match="input_size"):
        arch_from_params(params, 0)


def test_enqueued_preset_is_sampled_exactly() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(preset_params(preset("paper-mix"), 28))
    assert sample_arch(study.ask(), 28) == preset("paper-mix")


def test_space_imports_no_torch() -> None:
    code = "import sys, space, space.sample; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
