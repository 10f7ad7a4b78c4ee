"""Proxy fidelity: how well each cheap proxy ranks the reference set, per CPU-second.

    python benchmarks/bench_fidelity.py                 # Fashion-MNIST, the committed reference
    python benchmarks/bench_fidelity.py --preset ci     # synthetic mini-run (tests)
    python benchmarks/bench_fidelity.py --proxies quick,standard

A search ranks architectures by a proxy: a short training's validation accuracy (a budget),
the accuracy at a MO-ASHA rung, or nothing but the parameter count. Each proxy here trains
every architecture of the reference set (``benchmarks/reference_set.py``) at that proxy's
cost, on the split a search at that budget would use (seed 0), and is judged against the
reference's validation accuracy:

- Spearman's rho and Kendall's tau of proxy accuracy with reference accuracy, with 95%
  bootstrap intervals over the architectures;
- the same for Pareto ranks (non-dominated sorting of accuracy with parameters), which is
  what a multi-objective search selects by;
- the top-5 overlap, and CPU-seconds per architecture (this process's CPU time, so a
  loaded machine changes it less than wall time).

Two rows are not proxies: ``reference`` (the reference itself: rho is 1 by construction,
a check of the arithmetic) and ``reference seed 1`` (the reference trained again with
another seed, on the architectures that have one): the ceiling that seed noise sets.

Writes ``results/bench-fidelity/<run>/``: ``scores.csv`` (one row per proxy and
architecture; rerunning the same ``--run`` resumes from it), ``summary.csv`` and
``summary.txt`` (one row per proxy) and ``report.html`` (correlation against CPU-seconds,
one point per proxy).
"""

from __future__ import annotations

import argparse
import html
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from cse_nets.cli import OneLineParser, exits_on_bad_input
from search.data import Splits, load_dataset
from search.report import html_head
from search.reporting.tables import read_table
from search.study.pareto import non_dominated_ranks
from search.study.rank_agreement import agreement, top_k_overlap
from search.study.storage import DEFAULT_RESULTS_DIR
from search.training.config import TrainConfig
from search.training.evaluate import Evaluation, train_and_score
from search.training.loop import NonFiniteLossError
from space import Arch
from space.files import hold_folder, write_text_atomically

REFERENCE = Path(__file__).parent / "reference" / "fashion-mnist-16.csv"
SCORE_COLUMNS = ("proxy", "name", "accuracy", "cpu_seconds", "params")
SUMMARY_COLUMNS = ("proxy", "what", "archs", "spearman", "spearman_low", "spearman_high",
                   "kendall", "kendall_low", "kendall_high", "pareto_spearman",
                   "pareto_spearman_low", "pareto_spearman_high", "top5_overlap",
                   "cpu_seconds_per_arch")
TOP_K = 5


@dataclass(frozen=True)
class Training:
    """One training run per architecture; the accuracy after each epoch in ``reads`` is the
    score of the proxy named there (training stops after the last read)."""

    input_size: int
    epochs: int  # of the schedule, which may be longer than what is read
    subset: float
    batch_size: int
    val_fraction: float
    reads: tuple[tuple[int, str], ...]  # (epoch, proxy name)
    what: str
    anneal_at: tuple[int, ...] = ()
    ema: float = 0.0


def _one(name: str, size: int, epochs: int, subset: float, batch: int, val: float, what: str,
         **extra: Any) -> Training:
    return Training(size, epochs, subset, batch, val, ((epochs, name),), what, **extra)


# The CPU budgets as search.driver.config.BUDGETS had them before this benchmark, and the
# ideas it compares, all on Fashion-MNIST (28x28 native). A rung proxy reads a 15-epoch
# schedule at MO-ASHA's first two rungs (1 and 3), plainly or annealed at every rung.
FASHION_MNIST = (
    _one("smoke", 28, 1, 0.03, 64, 0.02, "budget smoke: 1 epoch on 3% at 28 px"),
    _one("quick", 28, 1, 0.10, 64, 0.05, "budget quick: 1 epoch on 10% at 28 px"),
    _one("standard", 28, 5, 0.25, 128, 0.10, "budget standard (CPU): 5 epochs on 25% at 28 px"),
    _one("16px", 16, 1, 0.10, 64, 0.05, "quick at 16 px: 1 epoch on 10%"),
    _one("16px-ema", 16, 1, 0.10, 64, 0.05, "16px scored with an EMA of the weights (0.99)",
         ema=0.99),
    _one("16px-2-epochs", 16, 2, 0.10, 64, 0.05, "lower resolution, more epochs: 2 on 10%"),
    _one("16px-3-epochs", 16, 3, 0.10, 64, 0.05, "lower resolution, more epochs: 3 on 10%"),
    _one("16px-subset-20", 16, 1, 0.20, 64, 0.05, "larger subset: 1 epoch on 20% at 16 px"),
    _one("16px-subset-30", 16, 1, 0.30, 64, 0.05, "larger subset: 1 epoch on 30% at 16 px"),
    _one("search-bench", 16, 1, 0.015, 32, 0.02,
         "bench_search_quality.py's task: 1 epoch on 1.5% at 16 px, batch 32"),
    Training(16, 15, 0.10, 64, 0.05, ((1, "rung-1"), (3, "rung-3")),
             "MO-ASHA rung at epoch 1 or 3 of a 15-epoch schedule, 10% at 16 px"),
    Training(16, 15, 0.10, 64, 0.05, ((1, "rung-1-annealed"), (3, "rung-3-annealed")),
             "the same rungs, the schedule annealed to 0 at every rung (1, 3, 9)",
             anneal_at=(1, 3, 9)),
)
# The default run, in the order of the questions it answers first. Left out: 'standard'
# costs about as much as the reference itself; 'rung-1-annealed' is '16px' (the same
# 1-epoch cycle, so the same training); 'rung-3*' need --proxies.
DEFAULT = ("16px", "rung-1", "quick", "16px-2-epochs", "16px-3-epochs", "16px-ema", "smoke",
           "16px-subset-30", "search-bench", "16px-subset-20")
CI = (
    _one("one-epoch", 16, 1, 0.1, 32, 0.2, "1 epoch"),
    Training(16, 3, 0.1, 32, 0.2, ((1, "rung-1"), (2, "rung-2")), "rungs of a 3-epoch run",
             anneal_at=(1,), ema=0.9),
)
# preset -> (dataset, trainings, the proxies a run without --proxies measures)
PRESETS = {"fashion-mnist": ("fashion-mnist", FASHION_MNIST, DEFAULT),
           "ci": ("synthetic", CI, ("one-epoch", "rung-1", "rung-2"))}


def proxy_names(trainings: tuple[Training, ...]) -> dict[str, str]:
    """Proxy name -> what it is, for every read of every training."""
    return {name: f"{t.what} (epoch {epoch})" if len(t.reads) > 1 else t.what
            for t in trainings for epoch, name in t.reads}


_SPLITS: dict[tuple[str, float, int], Splits] = {}


def _worker_init() -> None:
    torch.set_num_threads(1)  # one architecture per core


def train_proxies(dataset: str, training: Training, name: str,
                  arch_json: str) -> list[dict[str, Any]]:
    """Train one reference architecture as ``training`` says; one score row per read."""
    key = (dataset, training.val_fraction, training.input_size)
    if key not in _SPLITS:
        _SPLITS[key] = load_dataset(dataset, val_fraction=training.val_fraction, seed=0,
                                    input_size=training.input_size)
    config = TrainConfig(epochs=training.epochs, subset=training.subset,
                         batch_size=training.batch_size, seed=0, device="cpu",
                         anneal_at=training.anneal_at, ema=training.ema)
    last = training.reads[-1][0]
    wanted = dict(training.reads)
    rows: list[dict[str, Any]] = []
    started = time.process_time()

    class _Read(Exception):
        pass

    def on_epoch(evaluation: Evaluation) -> None:
        epoch = len(evaluation.val_accuracy_per_epoch)
        if epoch in wanted:
            rows.append({"proxy": wanted[epoch], "name": name,
                         "accuracy": evaluation.val_accuracy,
                         "cpu_seconds": round(time.process_time() - started, 2),
                         "params": evaluation.params})
        if epoch == last:
            raise _Read

    try:
        train_and_score(Arch.from_json(arch_json), _SPLITS[key], config, on_epoch=on_epoch)
    except _Read:
        pass
    except NonFiniteLossError:  # a search fails the trial: ranked below all, as chance
        read = {row["proxy"] for row in rows}
        rows += [{"proxy": proxy, "name": name,
                  "accuracy": 1 / _SPLITS[key].info.shape.num_classes,
                  "cpu_seconds": round(time.process_time() - started, 2), "params": np.nan}
                 for _, proxy in training.reads if proxy not in read]
    return rows


def _train_star(args: tuple[Any, ...]) -> list[dict[str, Any]]:
    return train_proxies(*args)


def reference_rows(path: Path) -> pd.DataFrame:
    return read_table(path, ("name", "seed", "params", "val_accuracy", "cpu_seconds", "arch"),
                      "reference-set file")


def _pareto_ranks(accuracy: np.ndarray, params: np.ndarray) -> np.ndarray:
    return non_dominated_ranks(np.column_stack([-accuracy, params]))


def summarise(scores: pd.DataFrame, reference: pd.DataFrame,
              whats: dict[str, str]) -> pd.DataFrame:
    """One row per proxy: its agreement with the reference's seed-0 validation accuracy."""
    base = reference[reference["seed"] == 0].set_index("name")
    base = base[np.isfinite(base["val_accuracy"])]
    rows = []
    for proxy, group in scores.groupby("proxy", sort=False):
        group = group.set_index("name").reindex(base.index).dropna(subset=["accuracy"])
        target = base.loc[group.index]
        params = target["params"].to_numpy(float)
        ours, theirs = group["accuracy"].to_numpy(float), target["val_accuracy"].to_numpy(float)
        ranks = agreement(ours, theirs)
        pareto = agreement(-_pareto_ranks(ours, params), -_pareto_ranks(theirs, params))
        rows.append({
            "proxy": proxy, "what": whats.get(proxy, ""), "archs": ranks.count,
            "spearman": ranks.spearman, "spearman_low": ranks.spearman_interval[0],
            "spearman_high": ranks.spearman_interval[1], "kendall": ranks.kendall,
            "kendall_low": ranks.kendall_interval[0], "kendall_high": ranks.kendall_interval[1],
            "pareto_spearman": pareto.spearman, "pareto_spearman_low": pareto.spearman_interval[0],
            "pareto_spearman_high": pareto.spearman_interval[1],
            "top5_overlap": top_k_overlap(ours, theirs, TOP_K),
            "cpu_seconds_per_arch": group["cpu_seconds"].mean(),
        })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def reference_scores(reference: pd.DataFrame) -> pd.DataFrame:
    """The rows that are not proxies: the reference itself, and its second seed."""
    rows = []
    for proxy, seed in (("reference", 0), ("reference seed 1", 1)):
        part = reference[reference["seed"] == seed]
        rows.append(pd.DataFrame({"proxy": proxy, "name": part["name"],
                                  "accuracy": part["val_accuracy"],
                                  "cpu_seconds": part["cpu_seconds"],
                                  "params": part["params"]}))
    return pd.concat(rows, ignore_index=True)


def params_scores(reference: pd.DataFrame) -> pd.DataFrame:
    """The floor: more parameters ranked as more accurate, at no cost."""
    part = reference[reference["seed"] == 0]
    return pd.DataFrame({"proxy": "params", "name": part["name"],
                         "accuracy": np.log(part["params"].astype(float)), "cpu_seconds": 0.0,
                         "params": part["params"]})


def summary_text(summary: pd.DataFrame, minutes: float) -> str:
    lines = [f"{'proxy':<18} {'archs':>5} {'Spearman [95%]':>22} {'Kendall [95%]':>22} "
             f"{'Pareto-rank rho [95%]':>23} {'top-5':>6} {'CPU-s/arch':>10}"]
    for row in summary.itertuples():
        lines.append(
            f"{row.proxy:<18} {row.archs:>5} "
            f"{row.spearman:>6.3f} [{row.spearman_low:.2f}, {row.spearman_high:.2f}]".ljust(47)
            + f" {row.kendall:>6.3f} [{row.kendall_low:.2f}, {row.kendall_high:.2f}]".ljust(23)
            + f" {row.pareto_spearman:>6.3f} [{row.pareto_spearman_low:.2f}, "
              f"{row.pareto_spearman_high:.2f}]".ljust(24)
            + f" {row.top5_overlap:>6.2f} {row.cpu_seconds_per_arch:>10.1f}")
    lines.append(f"wall time of this invocation: {minutes:.1f} min")
    return "\n".join(lines)


def figure(summary: pd.DataFrame) -> go.Figure:
    """Spearman against CPU-seconds per architecture, one point per proxy."""
    fig = go.Figure()
    for row in summary.itertuples():
        fig.add_trace(go.Scatter(
            x=[max(row.cpu_seconds_per_arch, 0.1)], y=[row.spearman], mode="markers+text",
            name=row.proxy, text=[row.proxy], textposition="top center",
            error_y={"type": "data", "symmetric": False,
                     "array": [row.spearman_high - row.spearman],
                     "arrayminus": [row.spearman - row.spearman_low]},
            hovertext=[f"{row.what}<br>Kendall {row.kendall:.3f}, Pareto-rank rho "
                       f"{row.pareto_spearman:.3f}, top-5 {row.top5_overlap:.2f}"]))
    fig.update_layout(title="Proxy fidelity: rank correlation with the reference set "
                            "(95% bootstrap interval) against cost",
                      xaxis={"title": "CPU-seconds per architecture (log; params: 0.1)",
                             "type": "log"},
                      yaxis={"title": "Spearman rho with reference accuracy"},
                      showlegend=False, height=600)
    return fig


def write_report(out: Path, summary: pd.DataFrame, text: str, reference: Path) -> None:
    page = [*html_head("Proxy fidelity"), "<h1>Proxy fidelity</h1>",
            f"<p>Reference set: {html.escape(str(reference))}; every proxy trained every "
            "architecture of it. CPU-seconds are this process's CPU time.</p>",
            figure(summary).to_html(full_html=False, include_plotlyjs=False,
                                    div_id="fidelity"),
            f"<pre>{html.escape(text)}</pre>", "</body></html>"]
    write_text_atomically(out / "report.html", "\n".join(page))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="fashion-mnist")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help=f"reference-set CSV (default: {REFERENCE})")
    parser.add_argument("--proxies", default=None,
                        help="comma-separated proxy names (default: the preset's, for "
                             f"fashion-mnist {','.join(DEFAULT)})")
    parser.add_argument("--run", default="default", help="run name (resumes its scores)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR / "bench-fidelity")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _chosen(trainings: tuple[Training, ...], names: str | None,
            default: tuple[str, ...]) -> tuple[Training, ...]:
    """The trainings that the wanted proxies need, each stopping after its last wanted read."""
    known = proxy_names(trainings)
    wanted = set(default if names is None else names.split(","))
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"unknown proxies {', '.join(unknown)}; choose from "
                         f"{', '.join(known)}")
    chosen = (replace(t, reads=tuple(r for r in t.reads if r[1] in wanted)) for t in trainings)
    return tuple(t for t in chosen if t.reads)


@exits_on_bad_input
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dataset, trainings, default = PRESETS[args.preset]
    trainings = _chosen(trainings, args.proxies, default)
    if not args.reference.is_file():
        raise ValueError(f"no reference set at {args.reference}; make one with "
                         "python benchmarks/reference_set.py")
    reference = reference_rows(args.reference)
    out = args.out / args.run
    with hold_folder(out):  # a second run on it would drop the first's rows from scores.csv
        return _measure(args, dataset, trainings, default, reference, out)


def _measure(args: argparse.Namespace, dataset: str, trainings: tuple[Training, ...],
             default: tuple[str, ...], reference: pd.DataFrame, out: Path) -> int:
    """Every training ``out/scores.csv`` lacks, then the summary and the report."""
    scores_path = out / "scores.csv"
    scores = (read_table(scores_path, SCORE_COLUMNS, "fidelity scores file")
              if scores_path.exists()
              else pd.DataFrame(columns=list(SCORE_COLUMNS)))
    done = set(zip(scores["proxy"], scores["name"], strict=True))
    archs = reference[reference["seed"] == 0]
    jobs = [(dataset, t, row.name, row.arch) for t in trainings for row in archs.itertuples()
            if any((proxy, row.name) not in done for _, proxy in t.reads)]
    # Proxy by proxy in the order asked, so a cut-short run has whole proxies; within one,
    # the dearest first (by the reference's own cost), so both workers finish together.
    order = list(default if args.proxies is None else args.proxies.split(","))
    cost = dict(zip(archs["name"], archs["cpu_seconds"], strict=True))
    jobs.sort(key=lambda job: (min(order.index(p) for _, p in job[1].reads), -cost[job[2]]))
    print(f"bench_fidelity: {len(trainings)} trainings x {len(archs)} architectures, "
          f"{len(jobs)} to run -> {out}", flush=True)
    started = time.perf_counter()
    rows = scores.to_dict("records")
    if jobs:  # a finished run only redraws: no workers to start
        with multiprocessing.get_context("spawn").Pool(args.workers,
                                                       initializer=_worker_init) as pool:
            for index, new in enumerate(pool.imap_unordered(_train_star, jobs), 1):
                # A training rerun for a later read (a rung) reads the earlier ones again:
                # the scores kept are the first.
                rows += [row for row in new if (row["proxy"], row["name"]) not in done]
                write_text_atomically(scores_path, pd.DataFrame(
                    rows, columns=list(SCORE_COLUMNS)).to_csv(index=False))
                if index % 10 == 0 or index == len(jobs):
                    print(f"  {index}/{len(jobs)} trainings, "
                          f"{(time.perf_counter() - started) / 60:.1f} min", flush=True)
    wanted = set(proxy_names(trainings))
    scores = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    scores = pd.concat([params_scores(reference), scores[scores["proxy"].isin(wanted)],
                        reference_scores(reference)], ignore_index=True)
    whats = {**proxy_names(trainings), "params": "parameter count alone (more = better)",
             "reference": "the reference itself (1 by construction)",
             "reference seed 1": "the reference, trained again with seed 1"}
    summary = summarise(scores, reference, whats)
    text = summary_text(summary, (time.perf_counter() - started) / 60)
    write_text_atomically(out / "summary.csv", summary.to_csv(index=False))
    write_text_atomically(out / "summary.txt", text + "\n")
    write_text_atomically(out / "settings.json", json.dumps(
        {"dataset": dataset, "reference": str(args.reference),
         "trainings": [asdict(t) for t in trainings]}, indent=2))
    write_report(out, summary, text, args.reference)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
