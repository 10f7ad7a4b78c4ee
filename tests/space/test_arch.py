from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
from hypothesis import given

from space import (
    PRESETS,
    Arch,
    Stage,
    block_output_size,
    blocks,
    load_arch,
    preset,
    stage_resolutions,
)
from tests.strategies import archs


@given(archs())
def test_json_round_trip_is_exact(arch: Arch) -> None:
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_json(arch.to_json(indent=None)) == arch


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_and_have_readable_keys(name: str) -> None:
    arch = preset(name)
    assert Arch.from_json(arch.to_json()) == arch
    assert "\n" not in str(arch)
    assert str(arch).startswith("stem32 ")


def test_string_form_shows_what_each_block_uses() -> None:
    assert str(Stage(op="btn", t=6, c=24, n=2, s=1)) == "btn_t6_c24_n2_s1"
    assert str(Stage(op="cse", t=6, c=64, n=4, s=2, r=16, cap=8)) == "cse_c64_n4_s2_r16_cap8"
    assert str(preset("paper-mix")).endswith("head1280g_prelu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "conv"}, "op must be one of btn, cse, got 'conv'"),
        ({"c": 0}, "c must be a positive integer, got 0"),
        ({"n": -1}, "n must be a positive integer, got -1"),
        ({"s": 3}, "s (stride) must be 1 or 2, got 3"),
        ({"t": 1.5}, "t must be a positive integer, got 1.5"),
        ({"r": True}, "r must be a positive integer, got True"),
        ({"cap": 0}, "cap must be a positive integer, got 0"),
    ],
)
def test_stage_validation_names_field_and_value(kwargs: dict, message: str) -> None:
    fields = {"op": "btn", "c": 8, "n": 1, "s": 1, **kwargs}
    with pytest.raises(ValueError) as err:
        Stage(**fields)
    assert message in str(err.value)


def test_arch_validation() -> None:
    stage = Stage(op="cse", c=10, n=1, s=1)
    with pytest.raises(ValueError, match="stages must be a non-empty tuple"):
        Arch(stages=())
    with pytest.raises(ValueError, match="stem must be a positive integer"):
        Arch(stages=(stage,), stem=0)
    with pytest.raises(ValueError, match="head_op must be one of"):
        Arch(stages=(stage,), head_op="wide")
    with pytest.raises(ValueError, match="act must be one of"):
        Arch(stages=(stage,), act="gelu")
    with pytest.raises(ValueError, match=r"head \(25\) to be a multiple .* channels \(10\)"):
        Arch(stages=(stage,), head=25, head_op="grouped")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"stages": []}', "format must be 1, got None"),
        ('{"format": 1, "stages": [], "colour": 1}', "unknown key(s) 'colour'"),
        ('{"format": 1, "stages": [{"op": "btn", "c": 1, "n": 1, "s": 1, "k": 3}]}',
         "stage 0: unknown key(s) 'k'"),
        ('{"format": 1, "stages": [{"op": "btn", "c": 1}]}', "stage 0: missing n, s"),
        ('{"format": 1, "stages": "btn"}', "stages must be a list"),
        ('{"format": 1, "stages": [{"op": "btn", "c": 1, "n": 1, "s": 4}]}', "s (stride)"),
    ],
)
def test_malformed_json_fails_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Arch.from_json(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_carries_a_format_version() -> None:
    assert json.loads(preset("paper-mix").to_json())["format"] == 1


def test_resolutions_follow_each_blocks_stride_rule() -> None:
    # BTN pads its 3x3 conv (7 -> 4); CSE's 2x2 stride-2 conv does not (7 -> 3).
    arch = Arch(stages=(Stage(op="btn", c=8, n=2, s=2), Stage(op="cse", c=8, n=1, s=2),
                        Stage(op="cse", c=8, n=1, s=2)))
    assert stage_resolutions(arch, 13) == [[13, 7], [7], [3]]
    assert stage_resolutions(preset("paper-mix"), 32)[3:] == [[32, 16, 16, 16], [16, 8, 8],
                                                             [8, 8, 8], [8]]


@given(archs(fits=32))
def test_blocks_walk_every_block_once_with_its_stride_and_chained_shapes(arch: Arch) -> None:
    walked = list(blocks(arch, 32))
    assert len(walked) == sum(stage.n for stage in arch.stages)
    assert [(b.stage_index, b.index_in_stage) for b in walked] == [
        (i, j) for i, stage in enumerate(arch.stages) for j in range(stage.n)]
    assert [b.stride for b in walked] == [
        stage.s if j == 0 else 1 for stage in arch.stages for j in range(stage.n)]
    assert (walked[0].c_in, walked[0].input_size) == (arch.stem, 32)
    for before, after in itertools.pairwise(walked):
        assert after.c_in == before.c_out
        assert after.input_size == before.output_size
    for block in walked:
        assert block.stage is arch.stages[block.stage_index]
        assert (block.op, block.c_out) == (block.stage.op, block.stage.c)
        assert block.output_size == block_output_size(block.op, block.stride, block.input_size)
        assert block.last_in_stage == (block.index_in_stage == block.stage.n - 1)
    by_stage = [[b.input_size for b in walked if b.stage_index == i]
                for i in range(len(arch.stages))]
    assert by_stage == stage_resolutions(arch, 32)


def test_blocks_of_a_small_arch() -> None:
    arch = Arch(stages=(Stage(op="btn", c=8, n=2, s=2), Stage(op="cse", c=16, n=1, s=2)),
                stem=4)
    assert [(b.stage_index, b.index_in_stage, b.c_in, b.c_out, b.stride, b.input_size,
             b.output_size) for b in blocks(arch, 13)] == [
        (0, 0, 4, 8, 2, 13, 7), (0, 1, 8, 8, 1, 7, 7), (1, 0, 8, 16, 2, 7, 3)]
    with pytest.raises(ValueError, match=r"does not fit a 1x1 input: stage 1 \(cse"):
        list(blocks(arch, 1))


def test_input_size_check_names_the_stage() -> None:
    arch = preset("paper-mix")
    arch.check_input_size(28)
    tiny = replace(arch, stages=arch.stages[:3] + (Stage(op="cse", c=8, n=1, s=2),) * 6)
    with pytest.raises(ValueError, match=r"does not fit a 32x32 input: stage 8"):
        tiny.check_input_size(32)
    with pytest.raises(ValueError, match="input_size must be a positive integer"):
        arch.check_input_size(0)


def test_load_arch_takes_names_and_files(tmp_path) -> None:
    assert load_arch("paper-mix") == preset("paper-mix")
    path = tmp_path / "a.json"
    path.write_text(preset("cse-only").to_json())
    assert load_arch(str(path)) == preset("cse-only")
    with pytest.raises(ValueError, match="unknown preset 'resnet'; choose one of"):
        load_arch("resnet")
    with pytest.raises(ValueError, match="cannot read architecture file"):
        load_arch(str(tmp_path / "missing.json"))
    path.write_text('{"format": 2}')
    with pytest.raises(ValueError, match=r"a\.json: arch: format must be 1"):
        load_arch(str(path))
