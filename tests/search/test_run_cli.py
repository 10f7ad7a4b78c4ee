"""``python -m search.run``: flags -> SearchConfig, and one ``error:`` line for bad input."""

from __future__ import annotations

import socket
from pathlib import Path

import optuna
import pytest
import torch

from search.data import DatasetError
from search.driver.config import BUDGETS, SearchConfig, check_config, parse_config
from search.driver.tune import SearchResult
from search.run import main
from search.study.schema import EXPORT_DIR, TEST_ACCURACY, export_attr
from tests.search.folders import make_image_folder
from tests.search.studies import ROWS, make_study


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _on(*flags: str) -> list[str]:
    return ["--dataset", "synthetic", *flags]


BAD_INPUT = {
    "missing dataset": ["--trials", "3"],
    "unknown dataset": ["--dataset", "mnist-3d"],
    "unknown budget": _on("--budget", "huge"),
    "unknown sampler": _on("--sampler", "cmaes"),
    "unknown scheduler": _on("--scheduler", "hyperband"),
    "zero min epochs": _on("--scheduler", "mo-asha", "--min-epochs", "0"),
    "reduction factor one": _on("--scheduler", "mo-asha", "--reduction-factor", "1"),
    "mo-asha with no rung below the budget": _on("--scheduler", "mo-asha", "--epochs", "1"),
    "mo-asha with its first rung at the budget": _on("--scheduler", "mo-asha", "--min-epochs",
                                                    "5", "--epochs", "5"),
    "mo-asha flags under fifo": _on("--budget", "quick", "--reduction-factor", "2"),
    "unknown preset": _on("--presets", "paper-mix,resnet50"),
    "zero trials": _on("--trials", "0"),
    "negative trials": _on("--trials", "-3"),
    "trials not a number": _on("--trials", "many"),
    "negative seed": _on("--seed", "-1"),
    "seed beyond 32 bits": _on("--seed", str(2**32)),
    "zero epochs": _on("--epochs", "0"),
    "negative batch size": _on("--batch-size", "-8"),
    "subset zero": _on("--subset", "0"),
    "subset above one": _on("--subset", "1.5"),
    "val fraction one": _on("--val-fraction", "1"),
    "non-positive lr": _on("--lr", "0"),
    "unknown objective": _on("--objectives", "accuracy,speed"),
    "unknown latency target": _on("--objectives", "accuracy,latency", "--latency-target", "tpu"),
    "objectives without params": _on("--objectives", "accuracy"),
    "zero cpus per trial": _on("--cpus-per-trial", "0"),
    "negative cpus per trial": _on("--cpus-per-trial", "-1"),
    "negative gpus per trial": _on("--gpus-per-trial", "-0.5"),
    "zero max concurrent": _on("--max-concurrent", "0"),
    "study name with a slash": _on("--study-name", "a/b"),
    "malformed storage URL": _on("--storage", "not a url"),
    "storage with no such database driver": _on("--storage", "nosuchdb://host/db"),
    "address without a port": _on("--address", "localhost"),
    "unreachable address": _on("--address", "127.0.0.1:{closed_port}"),
    "results dir under a file": _on("--results-dir", "{tmp}/file/results"),
    # Found only when the data is loaded, still before Ray starts: every trial would fail.
    "validation split rounding to empty": _on("--val-fraction", "0.0001"),
    "training subset rounding to empty": _on("--subset", "0.001"),
}


@pytest.mark.parametrize("argv", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_error_line_and_status_2(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    argv = [a.format(tmp=tmp_path, closed_port=_closed_port()) for a in argv]
    with pytest.raises(SystemExit) as exit_info:  # argparse exits; main returns
        raise SystemExit(main(["--results-dir", str(tmp_path), *argv]))
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ")
    assert err.count("\n") == 1, err
    assert out == ""
    assert not (tmp_path / "ray").exists()  # rejected before any trial ran
    assert not list(tmp_path.glob("*.db"))  # and before the study was created


@pytest.mark.parametrize(("rows", "exported", "printed"), [
    (ROWS, (0, 1, 3), "proxy ranking: Spearman 1.00, Kendall 1.00 over 3 retrained trials "
                      "(proxy val accuracy vs retrained test accuracy)\n"),
    (ROWS, (), "proxy ranking: not measured in this study (0 retrained trials; retrain more "
               "with search.export --retrain-epochs); 1 epoch on 10% of cifar10 at 32 px: "
               "proxy fidelity not measured (benchmarks/bench_fidelity.py measures it)\n"),
    ((), (), ""),  # a study that cannot say fails no finished search
], ids=["retrained", "none retrained", "no trials"])
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_finished_search_ends_with_the_proxy_ranking(
        rows: tuple, exported: tuple[int, ...], printed: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def search(config: SearchConfig) -> SearchResult:  # the study a search would leave
        study = make_study(config.storage_url, config.study, rows,
                           train_config={"epochs": 1, "subset": 0.1})
        for number in exported:  # retrained in the proxy's order
            study.set_user_attr(export_attr(number), {TEST_ACCURACY: ROWS[number].accuracy,
                                                      EXPORT_DIR: f"export/{number}"})
        return SearchResult(study_name=config.study, storage_url=config.storage_url,
                            experiment_dir=None, ran=len(rows), counted=len(rows),
                            wall_seconds=1.0)

    monkeypatch.setattr("search.run.run_search", search)
    assert main(_on("--storage", f"sqlite:///{tmp_path / 'studies.db'}")) == 0
    assert capsys.readouterr() == (printed, "")


def test_defaults() -> None:
    config = parse_config(["--dataset", "cifar10"])
    assert config.study == "cifar10-standard"
    assert config.storage_url == "sqlite:///results/cifar10-standard.db"
    assert config.presets == ("paper-mix", "mobilenetv2")
    assert tuple(o.name for o in config.ordered_objectives) == ("accuracy", "params")
    assert config.resolve_budget(gpu=True) == BUDGETS["standard"]["gpu"]
    assert config.resolve_budget(gpu=True).trials == 200
    # The standard budget stops poor trials early: rungs at epochs 1, 3, 9 of 15 on a GPU.
    assert config.resolve_budget(gpu=True).scheduler_spec.rungs(15) == (1, 3, 9)
    assert parse_config(["--dataset", "cifar10", "--scheduler", "fifo"]).resolve_budget(
        gpu=True).scheduler_spec.rungs(15) == ()
    quick = parse_config(["--dataset", "cifar10", "--budget", "quick"])
    assert quick.resolve_budget(gpu=False).scheduler == "fifo"  # 1 epoch: nothing to stop


def test_flags_override_the_budget() -> None:
    config = parse_config(["--dataset", "fashion-mnist", "--budget", "smoke", "--epochs", "3",
                           "--trials", "5", "--no-presets", "--objectives", "macs,params,accuracy"])
    budget = config.resolve_budget(gpu=False)
    assert (budget.trials, budget.epochs) == (5, 3)
    assert budget.subset == BUDGETS["smoke"]["cpu"].subset
    assert config.study == "fashion-mnist-smoke"
    assert config.presets == ()
    assert tuple(o.name for o in config.ordered_objectives) == ("accuracy", "params", "macs")


@pytest.mark.parametrize("flag", ["--study-name", "--study"])
def test_the_study_flag_has_optunas_spelling_and_an_alias(flag: str) -> None:
    assert parse_config(_on(flag, "mine")).study == "mine"


def test_a_config_reads_the_disk_only_when_checked(tmp_path: Path) -> None:
    config = SearchConfig(dataset=f"folder:{tmp_path / 'nothing'}")
    with pytest.raises(DatasetError, match="does not exist"):
        check_config(config)


def test_address_defaults_to_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert parse_config(["--dataset", "synthetic"]).address == "10.0.0.1:6379"


def test_config_checks_values_in_code_too() -> None:
    with pytest.raises(ValueError, match="subset must be in"):
        SearchConfig(dataset="synthetic", subset=0.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: the target is valid")
def test_cuda_latency_target_without_cuda_is_bad_input(capsys: pytest.CaptureFixture) -> None:
    assert main(_on("--objectives", "accuracy,latency", "--latency-target", "cuda")) == 2
    assert capsys.readouterr().err == (
        "error: target 'cuda' needs a CUDA device, and torch sees none here\n")


def test_latency_objective_carries_its_target() -> None:
    config = parse_config(_on("--objectives", "accuracy,latency", "--latency-target",
                              "cpu-torch"))
    assert [(o.name, o.target) for o in config.ordered_objectives] == [
        ("accuracy", None), ("latency", "cpu-torch")]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of a search refused with status 2 before Ray started (after the
    progress bars of an image folder's decoding, on stderr too)."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    line = err.splitlines()[-1]
    assert out == "" and line.startswith("error: ") and err.count("error") == 1, err
    return line


@pytest.mark.parametrize(("flags", "message"), [
    (("--val-fraction", "0.0001"), "--val-fraction 0.0001 leaves no validation image "
                                   "(2,000 training images in 10 classes"),
    (("--subset", "0.001"), "--subset 0.001 gives a trial 0 of the 1,800 training images, "
                            "fewer than the 10 classes"),
])
def test_a_budget_the_data_cannot_serve_is_refused_before_the_study(
        flags: tuple[str, ...], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = _on("--results-dir", str(tmp_path), "--input-size", "16", *flags)
    assert message in _refused(argv, capsys)
    # Nothing recorded: the corrected command starts a new study, not a refused resume.
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'synthetic-standard.db'}") == []


def test_a_folder_of_one_image_per_class_is_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes = tuple(f"c{i:04d}" for i in range(1000))
    folder = make_image_folder(tmp_path / "one-each", per_class=1, classes=classes)
    err = _refused(["--dataset", f"folder:{folder}", "--results-dir", str(tmp_path / "r"),
                    "--input-size", "16", "--data-dir", str(tmp_path / "data")], capsys)
    assert "leaves no validation image (1,000 training images in 1000 classes" in err
    assert not (tmp_path / "r" / "ray").exists()


def test_an_unwritable_latency_cache_is_refused_for_a_latency_search(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file" / "cache"))  # tests run as root
    err = _refused(_on("--objectives", "accuracy,latency", "--results-dir",
                       str(tmp_path / "r")), capsys)
    assert err.startswith(f"error: latency tables cannot be written in "
                          f"{tmp_path / 'file' / 'cache' / 'cse-nas' / 'latency'} (")
    assert not (tmp_path / "r").exists()  # refused with the flags, before the storage
