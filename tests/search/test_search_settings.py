"""What ``run_search`` sets for Ray and Tune holds while it runs and is undone when it
returns or raises; checked without Ray (``ray.init`` and the search itself stand in)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import pytest

from search.driver import tune as tune_module
from search.driver.config import SearchConfig
from search.driver.tune import run_search

LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune",
           "ray.tune.execution.experiment_state")


def _settings() -> dict[str, Any]:
    return {"RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE"),
            "RAY_AIR_NEW_OUTPUT": os.environ.get("RAY_AIR_NEW_OUTPUT"),
            "TUNE_DISABLE_SIGINT_HANDLER": os.environ.get("TUNE_DISABLE_SIGINT_HANDLER"),
            "optuna": optuna.logging.get_verbosity(),
            **{name: logging.getLogger(name).level for name in LOGGERS}}


@pytest.mark.parametrize("outcome", ["returns", "raises"])
def test_run_search_gives_the_process_its_settings_back(
        outcome: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    previous_verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        before = _settings()
        during: list[dict[str, Any]] = []

        def search(*args: object) -> str:
            during.append(_settings())
            if outcome == "raises":
                raise RuntimeError("the search failed")
            return "result"

        monkeypatch.setattr(tune_module.ray, "init", lambda **kwargs: None)
        monkeypatch.setattr(tune_module.ray, "shutdown", lambda: None)
        monkeypatch.setattr(tune_module, "_load_data", lambda config, gpu: None)
        monkeypatch.setattr(tune_module, "_plan", lambda config, trainable, data: None)
        monkeypatch.setattr(tune_module, "_search", search)
        config = SearchConfig(dataset="synthetic", results_dir=tmp_path)
        if outcome == "raises":
            with pytest.raises(RuntimeError, match="the search failed"):
                run_search(config)
        else:
            assert run_search(config) == "result"
        assert during == [{"RAY_AUTH_MODE": "disabled", "RAY_AIR_NEW_OUTPUT": "0",
                           "TUNE_DISABLE_SIGINT_HANDLER": "1", "optuna": optuna.logging.WARNING,
                           **dict.fromkeys(LOGGERS, logging.CRITICAL)}]
        assert _settings() == before
    finally:
        optuna.logging.set_verbosity(previous_verbosity)
