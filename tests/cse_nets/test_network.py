from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cse_nets import build_network, count_macs, count_parameters, profile_network
from cse_nets.blocks import CSEBlock, SpatialAttention, attention_width
from space import PRESETS, Arch, InputShape, Stage, network_key, preset
from tests.strategies import archs

# (in_channels, input_size, num_classes): CIFAR, Fashion-MNIST, Imagenette.
SHAPES = [(3, 32, 10), (1, 28, 10), (3, 64, 10)]


def _random_archs(count: int, seed: int) -> list[Arch]:
    """``count`` valid architectures that fit 28x28 (so every shape above), drawn with a
    fixed seed so failures reproduce."""
    rng = random.Random(seed)
    found = []
    while len(found) < count:
        rows = []
        for _ in range(rng.randint(1, 7)):
            rows.append(Stage(op=rng.choice(["btn", "cse"]), c=rng.randint(1, 40),
                              n=rng.randint(1, 2), s=rng.choice([1, 2]), t=rng.randint(1, 6),
                              r=rng.randint(1, 32), cap=rng.randint(1, 16)))
        grouped = rng.random() < 0.5
        head = rows[-1].c * rng.randint(1, 3) if grouped else rng.randint(1, 96)
        arch = Arch(stages=tuple(rows), stem=rng.randint(1, 32), head=head,
                    head_op="grouped" if grouped else "dense",
                    act=rng.choice(["relu6", "prelu"]))
        try:
            arch.check_input_size(28)
        except ValueError:
            continue
        found.append(arch)
    return found


CASES = [pytest.param(a, id=name) for name, a in PRESETS.items()] + [
    pytest.param(a, id=f"random{i}") for i, a in enumerate(_random_archs(50, seed=2))
]


@pytest.mark.parametrize("arch", CASES)
def test_builds_and_trains_at_every_input_shape(arch: Arch) -> None:
    torch.manual_seed(0)
    for in_channels, size, classes in SHAPES:
        net = build_network(arch, InputShape(in_channels, size, classes))
        out = net(torch.randn(2, in_channels, size, size))
        assert out.shape == (2, classes)
        out.square().mean().backward()
        assert torch.isfinite(out).all()
        for name, p in net.named_parameters():
            # Every layer the builder creates is used: each parameter receives a gradient.
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name


def test_paper_mix_counts_exactly_as_the_paper() -> None:
    arch = preset("paper-mix")
    assert count_parameters(build_network(arch, InputShape(3, 32, 10))) == 362_994
    assert count_parameters(build_network(arch, InputShape(3, 32, 100))) == 478_284


def test_mobilenetv2_is_within_2_5_percent_of_the_papers_count() -> None:
    net = build_network(preset("mobilenetv2"), InputShape(3, 32, 10))
    assert abs(count_parameters(net) / 2_253_000 - 1) < 0.025


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 64), size=st.integers(1, 40), r=st.integers(1, 32),
       cap=st.integers(1, 16))
def test_attention_parameters_depend_on_resolution_only(channels: int, size: int, r: int,
                                                        cap: int) -> None:
    block = CSEBlock(c_in=channels, c_out=channels, stride=1, size=size, r=r, cap=cap)
    attention = [m for m in block.modules() if isinstance(m, SpatialAttention)]
    assert len(attention) == 1
    pixels = size * size
    hidden = max(1, min(cap, pixels // r))
    assert count_parameters(attention[0]) == 2 * pixels * hidden
    assert attention_width(pixels, r=r, cap=cap) == hidden


def test_attention_runs_at_the_blocks_input_resolution() -> None:
    block = CSEBlock(c_in=8, c_out=16, stride=2, size=12, r=4, cap=100)
    assert block(torch.randn(1, 8, 12, 12)).shape == (1, 16, 6, 6)
    first_linear = block.body[-1].mlp[0]
    assert (first_linear.in_features, first_linear.out_features) == (144, 36)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(archs(fits=16, max_channels=24))
def test_profile_rows_add_up_to_the_network(arch: Arch) -> None:
    rows = profile_network(arch, InputShape(3, 16, 5))
    net = build_network(arch, InputShape(3, 16, 5))
    assert sum(r.params for r in rows) == count_parameters(net)
    assert sum(r.macs for r in rows) == count_macs(net, (3, 16, 16))
    assert all(r.other_params >= 0 for r in rows)


def test_paper_mix_cost_breakdown() -> None:
    rows = profile_network(preset("paper-mix"), InputShape(3, 32, 10))
    by_name = {r.name: r for r in rows}
    # The 32x32 CSE stage: 1024-pixel attention with 8 hidden units, in 4 blocks at
    # 32, 16, 16, 16 pixels a side.
    assert by_name["stage4"].attention_params == 2 * 8 * (1024 + 3 * 256)
    assert by_name["stage7"].out_size == 4
    assert 80e6 < sum(r.macs for r in rows) < 83e6


def test_builder_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        build_network(preset("paper-mix"), InputShape(3, 32, 0))
    with pytest.raises(ValueError, match="does not fit a 4x4 input"):
        build_network(preset("paper-mix"), InputShape(3, 4, 10))


def _shapes(arch: Arch, size: int) -> list[tuple[str, tuple[int, ...]]]:
    network = build_network(arch, InputShape(1, size, 10), seed=0)
    return [(name, tuple(tensor.shape)) for name, tensor in network.state_dict().items()]


def _reshuffled(arch: Arch, rng: random.Random) -> Arch:
    """``arch`` with the fields that may or may not reach the network drawn again."""
    return replace(arch, stages=tuple(
        replace(stage, t=stage.t if stage.op == "btn" and rng.random() < 0.5 else
                rng.randint(1, 6), r=rng.choice([1, 2, 8, 16, 32, 64]),
                cap=rng.choice([1, 4, 8, 16])) for stage in arch.stages))


@pytest.mark.parametrize("size", [28, 32])  # _random_archs fit both
def test_equal_network_keys_are_exactly_the_equal_networks(size: int) -> None:
    rng = random.Random(size)
    pairs = [(arch, _reshuffled(arch, rng)) for arch in _random_archs(60, seed=size)]
    equal = 0
    for arch, other in pairs:
        same_key = network_key(arch, size) == network_key(other, size)
        assert same_key == (_shapes(arch, size) == _shapes(other, size)), (arch, other)
        equal += same_key
    assert 0 < equal < len(pairs)  # both kinds were drawn


def test_a_cse_ratio_that_a_small_map_ignores_is_the_same_network() -> None:
    mix = preset("paper-mix")  # its last CSE stages run at 4x4 and 2x2 on a 16 px input

    def last_r(r: int) -> Arch:
        return replace(mix, stages=(*mix.stages[:-2], replace(mix.stages[-2], r=r),
                                    mix.stages[-1]))

    assert network_key(last_r(32), 16) == network_key(mix, 16)  # 16 // 16 = 1, 16 // 32 -> 1
    assert network_key(last_r(8), 16) != network_key(mix, 16)  # 16 // 8 = 2
    assert network_key(last_r(32), 32) != network_key(mix, 32)  # 64 // 16 = 4, 64 // 32 = 2
