from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from cse_nets.latency.cli import main
from cse_nets.latency.measure import check_target, measure_network
from cse_nets.latency.table import (
    Entry,
    LatencyTable,
    compare_ops,
    network_entries,
    predict_latency,
)
from cse_nets.latency.timing import Protocol, Timing, time_calls, wall_timed
from cse_nets.network import build_network
from cse_nets.profile import profile_network
from space import Arch, InputShape, Stage, preset

TINY = Arch(stages=(Stage("btn", c=8, n=2, s=1, t=3), Stage("cse", c=16, n=1, s=2)),
            stem=8, head=32)
TINY_SHAPE = InputShape(3, 8, 4)
FAST = Protocol(warmup=2, rounds=3, runs=3, min_round_s=0.0)
FINGERPRINT = {"target": "cpu-torch", "torch": "x", "cpu": "test cpu"}


class CountingMeasurer:
    """A fake measurer: every entry 'takes' 1 ms plus its input channels in microseconds."""

    def __init__(self) -> None:
        self.calls: list[Entry] = []

    def __call__(self, entry: Entry) -> Timing:
        self.calls.append(entry)
        seconds = 1e-3 + entry.c_in * 1e-6
        return Timing(median_s=seconds, spread_s=0.0, best_s=seconds, runs=1)


def fake_table(tmp_path, fingerprint=FINGERPRINT) -> tuple[LatencyTable, CountingMeasurer]:
    measurer = CountingMeasurer()
    table = LatencyTable("cpu-torch", directory=tmp_path, measurer=measurer,
                         fingerprint=dict(fingerprint))
    return table, measurer


BTN = Entry("btn", 16, 24, 32, stride=1, t=6)
CSE = Entry("cse", 32, 64, 16, stride=2, r=16, cap=8)


@pytest.mark.parametrize(("base", "change"), [
    (BTN, {"kind": "cse"}), (BTN, {"c_in": 24}), (BTN, {"c_out": 32}), (BTN, {"t": 3}),
    (BTN, {"size": 16}), (BTN, {"stride": 2}),
    (CSE, {"r": 8}), (CSE, {"cap": 4}), (CSE, {"c_in": 64}), (CSE, {"size": 8}),
    (CSE, {"stride": 1}), (CSE, {"c_out": 96}),
])
def test_a_changed_configuration_is_a_new_entry(tmp_path, base, change) -> None:
    table, measurer = fake_table(tmp_path)
    table.latency(base)
    table.latency(replace(base, **change))
    assert len(measurer.calls) == 2 and len(table) == 2


def test_a_second_lookup_measures_nothing_and_the_file_round_trips(tmp_path) -> None:
    table, measurer = fake_table(tmp_path)
    first = predict_latency(TINY, TINY_SHAPE, "cpu-torch", table=table)
    count = len(measurer.calls)
    assert count == len({entry.key for _, entry in network_entries(TINY, TINY_SHAPE)}) + 1
    assert predict_latency(TINY, TINY_SHAPE, "cpu-torch", table=table) == first
    assert len(measurer.calls) == count
    assert table.path.exists()

    reopened, remeasured = fake_table(tmp_path)
    assert len(reopened) == count
    assert predict_latency(TINY, TINY_SHAPE, "cpu-torch", table=reopened) == first
    assert remeasured.calls == [] and reopened.measured == 0


def test_another_target_version_or_cpu_is_another_table(tmp_path) -> None:
    table, _ = fake_table(tmp_path)
    table.latencies([BTN])
    for key, value in [("torch", "y"), ("cpu", "other"), ("target", "cpu-onnxruntime")]:
        other, measurer = fake_table(tmp_path, {**FINGERPRINT, key: value})
        assert other.path != table.path and len(other) == 0
        other.latency(BTN)
        assert len(measurer.calls) == 1


def test_save_merges_with_entries_another_process_wrote(tmp_path) -> None:
    one, _ = fake_table(tmp_path)
    two, _ = fake_table(tmp_path)
    one.latencies([BTN])
    two.latencies([CSE])
    assert len(fake_table(tmp_path)[0]) == 2


@pytest.mark.parametrize("text", ["", "{not json", '{"fingerprint": {}, "entries": {}}',
                                  "[1, 2]", b'{"fingerprint": "\xff\xfe\x80"}'])
def test_a_damaged_file_is_rebuilt_with_a_warning(tmp_path, text) -> None:
    table, _ = fake_table(tmp_path)
    if isinstance(text, bytes):  # not UTF-8
        table.path.write_bytes(text)
    else:
        table.path.write_text(text)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt, measurer = fake_table(tmp_path)
    rebuilt.latencies([BTN])
    assert len(measurer.calls) == 1
    assert json.loads(rebuilt.path.read_text())["entries"]


def test_prediction_is_the_sum_of_entries_less_overhead_plus_one_overhead(tmp_path) -> None:
    arch = preset("paper-mix")
    shape = InputShape(3, 32, 10)
    table, _ = fake_table(tmp_path)
    prediction = predict_latency(arch, shape, "cpu-torch", table=table)
    assert len(prediction.parts) == 1 + sum(stage.n for stage in arch.stages) + 1
    overhead = prediction.overhead_s
    expected = sum(part.latency_s for part in prediction.parts) - \
        (len(prediction.parts) - 1) * overhead
    assert math.isclose(prediction.total_s, expected)
    assert math.isclose(sum(prediction.by_part().values()) + overhead, prediction.total_s)
    assert list(prediction.by_part()) == ["stem", *(f"stage{i}" for i in range(1, 8)), "head"]


def test_entries_cover_every_block_of_the_network() -> None:
    arch = preset("paper-mix")
    shape = InputShape(3, 32, 10)
    network = build_network(arch, shape)
    blocks = [block for stage in network.stages for block in stage]
    entries = [entry for part, entry in network_entries(arch, shape)
               if part.startswith("stage")]
    assert [entry.kind for entry in entries] == [
        "btn" if type(block).__name__ == "BTNBlock" else "cse" for block in blocks]
    for entry, block in zip(entries, blocks, strict=True):
        built = entry.module()
        assert [p.shape for p in built.parameters()] == [p.shape for p in block.parameters()]
    head = network_entries(arch, shape)[-1][1]
    profiled = {row.name: row for row in profile_network(arch, shape)}
    assert (head.kind, head.c_in, head.c_out, head.size, head.classes) == (
        "head", 320, 1280, profiled["head"].in_size, 10)


def test_compare_ops_prices_both_ops_per_stage(tmp_path) -> None:
    table, _ = fake_table(tmp_path)
    rows = compare_ops(preset("paper-mix"), InputShape(3, 32, 10), "cpu-torch", table=table)
    assert [row.op for row in rows] == ["btn"] * 3 + ["cse"] * 4
    assert all(row.btn_s > 0 and row.cse_s > 0 for row in rows)


def fake_durations(values):
    it = iter(values)
    return lambda: next(it)


def test_protocol_discards_warmup_and_takes_the_median_of_round_medians() -> None:
    protocol = Protocol(warmup=2, rounds=3, runs=4, min_round_s=0.0)
    durations = [9.0, 9.0,  # warm-up: discarded
                 1.0, 2.0, 3.0, 100.0,  # a preempted run: the round median ignores it
                 2.0, 2.0, 2.0, 2.0,
                 50.0, 50.0, 50.0, 50.0]  # a round slowed by another job: ignored too
    timing = time_calls(fake_durations(durations), protocol)
    assert timing.median_s == 2.5  # the median of the round medians 2.5, 2.0 and 50.0
    assert timing.best_s == 2.0 and timing.runs == 12
    assert timing.spread_s > 0


def test_protocol_with_a_fake_clock_and_runs_scaled_to_the_round_time() -> None:
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731

    def run() -> None:
        now[0] += 0.001

    protocol = Protocol(warmup=3, rounds=2, runs=2, min_round_s=0.01, max_runs=50)
    timing = time_calls(wall_timed(run, clock), protocol)
    assert math.isclose(timing.median_s, 0.001) and timing.spread_s < 1e-12
    assert timing.runs == 2 * 10  # 10 ms per round / 1 ms per run


def test_timing_round_trips_and_rejects_garbage() -> None:
    timing = Timing(1.0, 0.1, 0.9, 5)
    assert Timing.from_dict(timing.to_dict()) == timing
    for bad in [{}, {"median_s": -1, "spread_s": 0, "best_s": 0, "runs": 1}, [1]]:
        with pytest.raises(ValueError):
            Timing.from_dict(bad)


@pytest.mark.parametrize("argv", [
    ["--arch", "paper-mix", "--dataset", "cifar10", "--target", "tpu"],
    ["--arch", "resnet50", "--dataset", "cifar10"],
    ["--arch", "paper-mix", "--input", "3x32"],
    ["--arch", "paper-mix", "--input", "3x4x4"],
    ["--arch", "paper-mix"],
    ["--arch", "paper-mix", "--dataset", "cifar10", "--batch", "0"],
    *([] if torch.cuda.is_available() else
      [["--arch", "paper-mix", "--dataset", "cifar10", "--target", "cuda"]]),
])
def test_bad_input_is_one_line_and_exit_2(argv, capsys, tmp_path) -> None:
    try:
        code = main([*argv, "--cache-dir", str(tmp_path), "--no-measure"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_unknown_target_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'tpu'"):
        check_target("tpu")


@pytest.mark.parametrize("target", ["cpu-torch", "cpu-onnxruntime"])
def test_real_tiny_measurements_are_positive_and_finite(target, tmp_path) -> None:
    timing = measure_network(TINY, TINY_SHAPE, target, protocol=FAST)
    assert 0 < timing.median_s < 1 and math.isfinite(timing.spread_s)
    table = LatencyTable(target, directory=tmp_path, protocol=FAST)
    prediction = predict_latency(TINY, TINY_SHAPE, target, table=table)
    assert 0 < prediction.total_s < 1
    assert all(part.latency_s > 0 for part in prediction.parts)


def test_cli_prints_prediction_and_measurement(tmp_path, capsys) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(TINY.to_json())
    assert main(["--arch", str(path), "--input", "3x8x8", "--classes", "4", "--target",
                 "cpu-torch", "--cache-dir", str(tmp_path), "--compare-ops"]) == 0
    out = capsys.readouterr().out
    assert "total (table)" in out and "measured whole network" in out
    assert "CSE/BTN" in out and out.count("stage1") == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the cuda target needs a CUDA GPU")
@pytest.mark.parametrize("batch", [1, 64])
def test_cuda_measurements_are_positive_and_finite(batch, tmp_path) -> None:
    timing = measure_network(TINY, TINY_SHAPE, "cuda", batch=batch, protocol=FAST)
    assert 0 < timing.median_s < 1
    table = LatencyTable("cuda", batch=batch, directory=tmp_path, protocol=FAST)
    assert predict_latency(TINY, TINY_SHAPE, "cuda", table=table, batch=batch).total_s > 0


def test_an_unwritable_cache_is_a_warning_and_the_table_is_kept_in_memory(
        tmp_path, capsys, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # no folder can be made
    path = tmp_path / "tiny.json"
    path.write_text(TINY.to_json())
    with pytest.warns(UserWarning, match="cannot be written.*kept in memory"):
        code = main(["--arch", str(path), "--input", "3x8x8", "--classes", "4", "--target",
                     "cpu-torch", "--no-measure", "--compare-ops"])
    assert code == 0
    out = capsys.readouterr().out
    assert "total (table)" in out and "CSE/BTN" in out
    assert not (blocker / "cache").exists()
