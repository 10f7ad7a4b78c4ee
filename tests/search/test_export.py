from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import optuna
import pandas as pd
import pytest
import torch
from onnx import helper
from PIL import Image

from cse_nets.latency import measure as latency_measure
from cse_nets.latency import table as latency_table
from cse_nets.latency.timing import Timing
from cse_nets.load import MODEL_FILE, ONNX_FILE, load_model, write_export
from search import export, predict, report
from search.data import load_dataset
from search.data.augment import Normalize
from search.study.results import load_results
from search.study.schema import export_attr
from search.training import TrainConfig, measure_accuracy
from space import Arch, InputShape, Stage
from tests.search.studies import BAD_CASES, Row, bad_argv, make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

# Tiny enough to retrain on the synthetic set in seconds on one CPU core.
TINY = Arch(stages=(Stage(op="btn", c=8, n=1, s=2, t=2), Stage(op="cse", c=16, n=1, s=2)),
            stem=8, head=32)
TINIER = Arch(stages=(Stage(op="btn", c=8, n=1, s=2, t=1), Stage(op="btn", c=8, n=1, s=2)),
              stem=8, head=16)
ROWS = (Row(TINY, 0.6, 3_000), Row(TINIER, 0.4, 1_500), Row(TINY, 0.5, 3_000),
        Row(TINIER, None, 1_500))
TRAIN = TrainConfig(epochs=1, batch_size=64, lr=0.05, subset=0.25, device="cpu")


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def synthetic_study(storage: str, info, rows=ROWS) -> optuna.Study:
    return make_study(storage, rows=rows, dataset="synthetic",
                      input_shape=info.shape.chw,
                      num_classes=info.shape.num_classes, train_config=asdict(TRAIN))


def test_export_without_retraining_writes_the_specs(tmp_path, storage, synthetic, capsys):
    synthetic_study(storage, synthetic.info)
    code = export.main(["--study-name", "demo", "--storage", storage,
                        "--results-dir", str(tmp_path)])
    assert code == 0
    # The front: trials 0 (TINY, 0.6) and 1 (TINIER, 0.4); trial 2 repeats TINY, dominated.
    dirs = sorted(p.name for p in (tmp_path / "demo" / "export").iterdir())
    assert dirs == ["0-bc-3k", "1-bb-2k"]
    folder = tmp_path / "demo" / "export" / "0-bc-3k"
    assert Arch.from_json((folder / "arch.json").read_text()) == TINY
    model = json.loads((folder / "model.json").read_text())
    assert (model["in_channels"], model["num_classes"], model["trial"]) == (3, 10, 0)
    assert "stage2" in (folder / "summary.txt").read_text()
    assert not (folder / "weights.pt").exists()
    assert "trial 0:" in capsys.readouterr().out


def test_top_k_takes_the_largest_hypervolume_contributions(tmp_path, storage, synthetic):
    synthetic_study(storage, synthetic.info)
    assert export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--top", "1"]) == 0
    assert [p.name for p in (tmp_path / "demo" / "export").iterdir()] == ["0-bc-3k"]


def test_one_export_per_network_and_copies_keep_their_contribution(tmp_path, storage,
                                                                   synthetic, capsys):
    # At 32 px TINY's CSE block runs at 16x16: 256 // 16 and 256 // 32 both hit the cap of 8.
    same_network = replace(TINY, stages=(TINY.stages[0], replace(TINY.stages[1], r=32)))
    study = synthetic_study(storage, synthetic.info, rows=(
        Row(TINY, 0.6, 3_000), Row(same_network, 0.6, 3_000), Row(TINIER, 0.4, 1_500)))
    results = load_results(study)
    assert results.front["number"].tolist() == [0, 1, 2]
    assert results.distinct_networks(results.front)["number"].tolist() == [0, 2]
    contributions = results.front["hv_contribution"].tolist()
    assert contributions[0] == contributions[1] > 0  # not 0 each, as two equal points are
    assert export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "demo" / "export").iterdir()) == [
        "0-bc-3k", "2-bb-2k"]
    assert report.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path)]) == 0
    assert "front: 2 networks (3 trials)" in capsys.readouterr().out


@pytest.mark.slow
def test_retrain_tests_exports_onnx_and_reports_back(tmp_path, storage, synthetic, capsys):
    study = synthetic_study(storage, synthetic.info)  # a front of two networks
    # Two worker processes, one network each (the other tests retrain one, in this one).
    code = export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--retrain-epochs", "1", "--jobs", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "retraining 2 networks, 2 at once" in out
    other = tmp_path / "demo" / "export" / "1-bb-2k"
    assert f"trial 1: {other}  test acc" in out
    assert study.user_attrs[export_attr(1)]["export_dir"] == str(other)
    folder = tmp_path / "demo" / "export" / "0-bc-3k"
    assert {p.name for p in folder.iterdir()} == {"arch.json", "model.json", "summary.txt",
                                                 "weights.pt", "model.onnx", "metrics.json"}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["onnx"]["max_abs_diff"] < 1e-4
    latency = metrics["latency"]
    assert latency["target"] == "cpu-onnxruntime" and latency["batch"] == 1
    assert latency["measured_ms"] > 0 and latency["predicted_ms"] > 0
    # Retrained on train + validation, all of it: the study's subset does not apply.
    assert metrics["retrain"]["train_images"] == sum(map(len, (synthetic.train[1],
                                                               synthetic.val[1])))
    assert metrics["retrain"]["train_config"]["subset"] == 1.0

    # load_model gives back the trained network: it scores the recorded test accuracy...
    model = load_model(folder)
    assert measure_accuracy(model, *synthetic.test, synthetic.info, device="cpu",
                    precision="fp32") == metrics["test_accuracy"]
    # ...and onnxruntime agrees with it, on a batch size other than the exported one.
    normalize = Normalize(synthetic.info.mean, synthetic.info.std, torch.device("cpu"))
    images = normalize(synthetic.test[0][:5]).contiguous()
    with torch.no_grad():
        expected = model(images).numpy()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"images": images.numpy()})
    assert np.abs(got - expected).max() < 1e-4

    # The test accuracy went back into the study, and the report shows it.
    assert study.user_attrs[export_attr(0)] == {"test_accuracy": metrics["test_accuracy"],
                                                "export_dir": str(folder)}
    assert report.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--no-dashboard"]) == 0
    trials = pd.read_csv(tmp_path / "demo" / "trials.csv")
    assert trials["test_accuracy"][0] == pytest.approx(metrics["test_accuracy"])
    assert "retrained: test accuracy" in (tmp_path / "demo" / "report.html").read_text()


def test_jobs_without_retraining_is_bad_input(tmp_path, storage, synthetic, capsys):
    synthetic_study(storage, synthetic.info)
    code = export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--jobs", "2"])
    assert code == 2
    assert capsys.readouterr().err == ("error: --jobs is the number of retrains at once: give "
                                       "--retrain-epochs too\n")


@pytest.mark.parametrize(("case", "message"), BAD_CASES)
def test_bad_input_is_one_line_and_exit_2(tmp_path, storage, capsys, case, message):
    code = export.main(bad_argv(tmp_path, storage, case))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_study_without_a_usable_train_config_is_bad_input(tmp_path, storage, synthetic,
                                                            capsys):
    make_study(storage, rows=ROWS[:1], dataset="synthetic", input_shape=(3, 32, 32),
               train_config={"epochs": 1, "no_such_field": 3})
    code = export.main(["--study", "demo", "--storage", storage, "--results-dir",
                        str(tmp_path), "--retrain-epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "train_config" in err


# --- search.predict on damaged exports and hostile images -------------------------------------

PREDICT_SHAPE = InputShape(3, 8, 3)


def write_onnx_export(directory: Path, **model: object) -> Path:
    """An export that ``search.predict`` runs, written in milliseconds: TINY's ``arch.json``
    and a ``model.json`` for 3x8x8 images (``model`` overrides its keys), with a hand-built
    ``model.onnx`` whose logits are the mean of each channel (class 0 is the reddest)."""
    directory.mkdir(parents=True, exist_ok=True)
    extra = {"class_names": ["red", "green", "blue"],
             "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    write_export(directory, TINY, PREDICT_SHAPE, extra)
    text = json.loads((directory / MODEL_FILE).read_text())
    (directory / MODEL_FILE).write_text(json.dumps({**text, **model}))
    size = ["batch", 3, PREDICT_SHAPE.input_size, PREDICT_SHAPE.input_size]
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["logits"])], "channel-means",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, size)],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 3])])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 9  # one every onnxruntime this project allows reads
    onnx.save(onnx_model, directory / ONNX_FILE)
    return directory


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    Image.new("RGB", (12, 10), colour).save(path)
    return path


def _huge_png(path: Path) -> Path:
    """A valid PNG header for 20000x20000 pixels (the pixels need not follow: Pillow
    refuses the size when it opens the file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_predict_names_the_class_of_each_image(tmp_path, capsys):
    export_dir = write_onnx_export(tmp_path / "export")
    images = [_png(tmp_path / "red.png"), _png(tmp_path / "blue.png", (10, 20, 240))]
    assert predict.main([str(export_dir), *map(str, images)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"{images[0]}: red",
                                                       f"{images[1]}: blue"]


def _truncated_onnx(tmp: Path) -> tuple[Path, list[Path]]:
    export_dir = write_onnx_export(tmp / "export")
    whole = (export_dir / ONNX_FILE).read_bytes()
    (export_dir / ONNX_FILE).write_bytes(whole[: len(whole) // 2])
    return export_dir, [_png(tmp / "a.png")]


def _garbage_onnx(tmp: Path) -> tuple[Path, list[Path]]:
    export_dir = write_onnx_export(tmp / "export")
    (export_dir / ONNX_FILE).write_bytes(b"not a model\n" * 10)
    return export_dir, [_png(tmp / "a.png")]


PREDICT_CASES = {
    "20000x20000 image": (
        lambda t: (write_onnx_export(t / "export"), [_huge_png(t / "huge.png")]),
        "huge.png"),
    "garbage model.onnx": (_garbage_onnx, "model.onnx"),
    "truncated model.onnx": (_truncated_onnx, "model.onnx"),
    "input size other than the model's": (
        lambda t: (write_onnx_export(t / "export", input_size=16), [_png(t / "a.png")]),
        "model.json says 3x16x16"),
    "normalization not an object": (
        lambda t: (write_onnx_export(t / "export", normalization=[0.5, 0.25]),
                   [_png(t / "a.png")]), "normalization must be an object"),
    "std of 0": (
        lambda t: (write_onnx_export(t / "export", normalization={
            "mean": [0.5] * 3, "std": [0.25, 0, 0.25]}), [_png(t / "a.png")]), "above 0"),
    "std of the wrong length": (
        lambda t: (write_onnx_export(t / "export", normalization={
            "mean": [0.5] * 3, "std": [0.25]}), [_png(t / "a.png")]), "3 finite number"),
}


@pytest.mark.parametrize("case", list(PREDICT_CASES))
def test_predict_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    make, fragment = PREDICT_CASES[case]
    export_dir, images = make(tmp_path)
    code = predict.main([str(export_dir), *map(str, images)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.slow
def test_an_unwritable_latency_cache_is_a_warning_and_the_export_is_whole(
        tmp_path, storage, synthetic, monkeypatch):
    study = synthetic_study(storage, synthetic.info, rows=ROWS[:1])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))  # no folder can be made

    def timed_by_size(module: torch.nn.Module, *args: object, **kwargs: object) -> Timing:
        # Timing every block and the correction's networks again would take most of a
        # minute; what is under test is where the measurements go, not what they are.
        seconds = 1e-5 + 1e-9 * sum(p.numel() for p in module.parameters())
        return Timing(median_s=seconds, spread_s=0.0, best_s=seconds, runs=1)

    for module in (latency_measure, latency_table):  # the table's and the correction's
        monkeypatch.setattr(module, "measure_module", timed_by_size)
    with pytest.warns(UserWarning, match="latency table .* cannot be written"):
        code = export.main(["--study", "demo", "--storage", storage, "--results-dir",
                            str(tmp_path), "--retrain-epochs", "1",
                            "--data-dir", str(tmp_path / "data")])
    assert code == 0
    folder = tmp_path / "demo" / "export" / "0-bc-3k"
    assert {p.name for p in folder.iterdir()} == {"arch.json", "model.json", "summary.txt",
                                                 "weights.pt", "model.onnx", "metrics.json"}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["latency"]["predicted_ms"] > 0  # from the table kept in memory
    assert study.user_attrs[export_attr(0)] == {"test_accuracy": metrics["test_accuracy"],
                                                "export_dir": str(folder)}


@pytest.mark.slow
def test_a_failure_mid_export_leaves_the_earlier_export_as_it_was(
        tmp_path, storage, synthetic, monkeypatch):
    study = synthetic_study(storage, synthetic.info, rows=ROWS[:1])
    argv = ["--study", "demo", "--storage", storage, "--results-dir", str(tmp_path)]
    assert export.main(argv) == 0
    exports = tmp_path / "demo" / "export"
    before = _files(exports / "0-bc-3k")

    def broken(*args: object) -> float:
        raise RuntimeError("the ONNX exporter broke")

    monkeypatch.setattr(export, "export_onnx", broken)
    with pytest.raises(RuntimeError, match="ONNX exporter broke"):
        export.main([*argv, "--retrain-epochs", "1"])  # after training, before metrics
    assert [p.name for p in exports.iterdir()] == ["0-bc-3k"]  # no partial folder beside it
    assert _files(exports / "0-bc-3k") == before  # no new weights beside the old specs
    assert export_attr(0) not in study.user_attrs
