"""Search quality: samplers, or schedulers, compared on real data, seed by seed.

    python benchmarks/bench_search_quality.py                  # the default task below
    python benchmarks/bench_search_quality.py --preset ci      # a mini-run on synthetic data
    python benchmarks/bench_search_quality.py --samplers random,tpe --trials 32 --seeds 2
    python benchmarks/bench_search_quality.py --preset mo-asha # fifo against mo-asha
    python benchmarks/bench_search_quality.py --preset paper-rule   # TPE at the quick budget

Default task: Fashion-MNIST resized to 16x16; each trial trains 1 epoch on 1.5% of the
training split (882 images, 28 steps of 32) and is scored on a 2% validation split (1,200
images); no presets; samplers random and tpe (``--samplers`` adds others of
``search.driver.samplers``), seeds 0-4; 20 trials per search, but random search gets
``--baseline-trials-factor`` (2) times as many, so the summary asks whether a sampler's
N trials are worth random's 2N: per sampler, its mean hypervolume after N over random's
after 2N on the same seeds, with a 95% bootstrap interval over seeds and each seed's ratio.
Each (sampler, seed) is one search through ``search.driver.tune.run_search`` (Ray Tune, Optuna
SQLite), 2 trials at a time on 2 cores; the seed also fixes the data split and the training
seed, so all samplers face the same task, and an architecture scores the same whichever
sampler proposes it.

Preset ``mo-asha``: the default sampler (``tpe-spread``) under ``--scheduler fifo`` and
``mo-asha`` on the same task with 15-epoch trials (the standard GPU budget's: rungs at
epochs 1, 3 and 9, eta 3, the schedule annealed at each), 24 trials, 5 seeds; a mo-asha
search gets ``--asha-trials-factor`` (3) times the trials, since most of its trials stop
after one or three epochs. The summary compares hypervolume against training epochs and wall time:
the epochs and minutes at which mo-asha's mean curve reaches fifo's final mean, and seed
by seed the share of the same seed's fifo epochs it needed to reach that search's final
hypervolume. Architectures both schedulers trained to the end on one seed (same split and
training seed) are paired: their accuracy difference is what mo-asha's restarts at the
rungs cost a full training. ``--fifo-sampler NAME`` runs fifo's searches with sampler
NAME instead of each sampler's own, to hold a sampler made for mo-asha against fifo as a
search runs by default. The summary's last seed-by-seed line starts with fifo's own
hypervolume after a third of its epochs: what its last two thirds added, which a run must
beat, not merely match per epoch, to reach fifo's final in a third of the epochs.

Preset ``paper-rule``: the quick budget's search, 5 times: TPE at 16 px (1
epoch on 30%, a 5% validation split), 16 trials of which the first two are the presets
paper-mix and mobilenetv2, seeds 0-4.

Every run ends with the paper's rule (``search.reporting.paper_rule``): per stage, the share
of CSE blocks on the searches' final fronts against their dominated trials, with intervals
over searches.

Writes ``results/bench-search-quality/<run>/``: one study per search (``<sampler>-seed<k>.db``;
rerunning with the same ``--run`` resumes them), ``curves.csv`` (one row per sampler, seed
and trial: hypervolume of the complete trials so far, as ``search.report`` measures it),
``cse_shares.csv`` (per search and stage, the CSE share on its front and among its
dominated trials), ``report.html`` (self-contained plotly page) and ``summary.txt``, the
table also printed.
"""

from __future__ import annotations

import argparse
import html
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go

from cse_nets.cli import OneLineParser, exits_on_bad_input
from search.driver.config import SearchConfig
from search.driver.samplers import DEFAULT_SAMPLER, SAMPLERS
from search.driver.scheduler import SCHEDULERS
from search.driver.tune import ray_session, run_search
from search.report import html_head
from search.reporting.paper_rule import cse_rule, cse_shares, format_cse_rule
from search.reporting.quality import (
    BASELINE,
    by_epochs,
    by_time,
    by_trials,
    format_paired_accuracy,
    format_scheduler_summary,
    format_summary,
    paired_accuracy,
    scheduler_summary,
    search_curve,
    summarise,
)
from search.reporting.quality_figures import (
    cse_rule_figure,
    fronts_figure,
    hypervolume_band_figure,
    sampler_colours,
)
from search.study.results import StudyResults, load_results
from space import PRESETS as ARCH_PRESETS
from space.files import hold_folder, write_text_atomically

PRESETS: dict[str, dict[str, object]] = {
    "default": {"dataset": "fashion-mnist", "input_size": 16, "trials": 20, "seeds": 5,
                "samplers": "random,tpe", "epochs": 1, "subset": 0.015,
                "val_fraction": 0.02, "batch_size": 32},
    # the quick budget's search (16 px: 1 epoch on 30%, 16 trials, the presets enqueued), 5
    # seeds: where do its fronts put CSE blocks, how large are they, how long does it take?
    # make search's own setting is --trials 40 --subset 0.1 on top of it.
    "paper-rule": {"dataset": "fashion-mnist", "input_size": 16, "trials": 16, "seeds": 5,
                   "samplers": "tpe", "epochs": 1, "subset": 0.3, "val_fraction": 0.05,
                   "batch_size": 64, "baseline_trials_factor": 0,
                   "presets": "paper-mix,mobilenetv2"},
    "ci": {"dataset": "synthetic", "input_size": 16, "trials": 2, "seeds": 2,
           "samplers": "random,tpe", "epochs": 1, "subset": 0.1, "val_fraction": 0.1,
           "batch_size": 32},
    # the schedulers under the sampler a search gets by default (the README's TPE runs
    # were made with --samplers tpe)
    "mo-asha": {"dataset": "fashion-mnist", "input_size": 16, "trials": 24, "seeds": 5,
                "samplers": DEFAULT_SAMPLER, "schedulers": "fifo,mo-asha", "epochs": 15,
                "subset": 0.015, "val_fraction": 0.02, "batch_size": 32},
    "ci-mo-asha": {"dataset": "synthetic", "input_size": 16, "trials": 2, "seeds": 1,
                   "samplers": "tpe", "schedulers": "fifo,mo-asha", "epochs": 3,
                   "subset": 0.1, "val_fraction": 0.1, "batch_size": 32},
}
DEFAULTS = {"schedulers": "fifo", "min_epochs": 1, "reduction_factor": 3,
            "asha_trials_factor": 3, "baseline_trials_factor": 2, "presets": "",
            "fifo_sampler": None}
DEFAULT_OUT = Path("results/bench-search-quality")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--preset", choices=PRESETS, default="default",
        help="the task and budget; the flags below override it (default: %(default)s)")
    add("--samplers", help=f"comma-separated, from {', '.join(SAMPLERS)}; {BASELINE} first "
                           "if absent (the ratios are against it)")
    add("--trials", type=int, help="trained trials per search")
    add("--seeds", type=int, help="searches per sampler, seeds 0..N-1")
    add("--dataset")
    add("--input-size", type=int)
    add("--epochs", type=int)
    add("--subset", type=float, help="fraction of the training split per trial")
    add("--val-fraction", type=float)
    add("--batch-size", type=int)
    add("--schedulers", help=f"comma-separated, from {', '.join(SCHEDULERS)} (default: fifo); "
                             "with mo-asha, fifo is the baseline")
    add("--min-epochs", type=int, help="mo-asha's first rung (default 1)")
    add("--reduction-factor", type=int, help="mo-asha's eta (default 3)")
    add("--fifo-sampler", help="comparing schedulers, fifo's searches use this sampler "
                               "(default: each sampler's own), so a sampler made for mo-asha "
                               "is held against fifo as a search runs by default")
    add("--asha-trials-factor", type=int,
        help="a mo-asha search runs this many times the trials (default 3)")
    add("--baseline-trials-factor", type=int,
        help=f"comparing samplers, {BASELINE} search runs this many times the trials (default "
             "2: is a sampler's N worth random's 2N?); 0: no random search unless listed")
    add("--presets", help="comma-separated presets enqueued first in every search, counted "
                          "in --trials as search.run counts them (default: none)")
    add("--max-concurrent", type=int, help="trials at a time (default: one per CPU)")
    add("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    add("--run", help="the run's folder under --out (default: <preset>-<date>-<time>)")
    return parser


def _names(text: object, known: Sequence[str], kind: str) -> list[str]:
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(known)}")
    return names


def _settings(args: argparse.Namespace) -> dict[str, object]:
    preset = {**DEFAULTS, **PRESETS[args.preset]}
    settings = {k: v if getattr(args, k) is None else getattr(args, k)
                for k, v in preset.items()}
    samplers = _names(settings["samplers"], tuple(SAMPLERS), "sampler")
    settings["presets"] = tuple(_names(settings["presets"], tuple(ARCH_PRESETS), "preset"))
    schedulers = _names(settings["schedulers"], SCHEDULERS, "scheduler")
    for key in ("trials", "seeds", "asha_trials_factor"):
        if int(settings[key]) < 1:  # before it is multiplied into another count
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer, got "
                             f"{settings[key]}")
    if settings["baseline_trials_factor"] < 0:
        raise ValueError("--baseline-trials-factor must be 0 (no baseline) or more, got "
                         f"{settings['baseline_trials_factor']}")
    if schedulers == ["fifo"]:  # comparing samplers: against random search, unless told not
        with_baseline = settings["baseline_trials_factor"] > 0 and BASELINE not in samplers
        samplers = [BASELINE] * with_baseline + samplers
    else:  # comparing schedulers: against fifo
        schedulers = ["fifo"] * ("fifo" not in schedulers) + schedulers
    if settings["fifo_sampler"] is not None:
        if schedulers == ["fifo"]:
            raise ValueError("--fifo-sampler is for a scheduler comparison: add --schedulers "
                             "fifo,mo-asha")
        names = _names(settings["fifo_sampler"], tuple(SAMPLERS), "sampler")
        if len(names) != 1:
            raise ValueError(f"--fifo-sampler takes one sampler, got "
                             f"{settings['fifo_sampler']!r}")
        settings["fifo_sampler"] = names[0]
    settings["samplers"], settings["schedulers"] = samplers, schedulers
    return settings


def _baseline_trials(settings: dict[str, object]) -> int:
    """Trials of the random search a sampler comparison measures the others against (a
    listed ``random`` under factor 0 runs the plain trial count)."""
    return int(settings["trials"]) * max(1, int(settings["baseline_trials_factor"]))


def _label(sampler: str, scheduler: str) -> str:
    """A run's name in the tables: the sampler, and the scheduler unless it is fifo."""
    return sampler if scheduler == "fifo" else f"{sampler}_{scheduler}"


def _search(settings: dict[str, object], sampler: str, scheduler: str, seed: int,
            run_dir: Path, max_concurrent: int | None) -> tuple[optuna.Study, StudyResults]:
    trials, rungs = int(settings["trials"]), {}
    if sampler == BASELINE and scheduler == "fifo":
        trials = _baseline_trials(settings)
    if scheduler != "fifo":
        trials *= int(settings["asha_trials_factor"])
        rungs = {"min_epochs": settings["min_epochs"],
                 "reduction_factor": settings["reduction_factor"]}
    config = SearchConfig(
        dataset=str(settings["dataset"]), budget="smoke", trials=trials,
        epochs=settings["epochs"], subset=settings["subset"],
        val_fraction=settings["val_fraction"], batch_size=settings["batch_size"],
        input_size=settings["input_size"], sampler=sampler, scheduler=scheduler, **rungs,
        seed=seed, presets=settings["presets"],
        study_name=f"{_label(sampler, scheduler)}-seed{seed}",
        results_dir=run_dir, max_concurrent=max_concurrent,
    )
    log = io.StringIO()  # Tune pickles the progress callback: no open files in it
    try:
        result = run_search(config, out=log)
    finally:
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        with (run_dir / "logs" / f"{config.study}.log").open("a", encoding="utf-8") as file:
            file.write(log.getvalue())
    study = optuna.load_study(study_name=result.study_name, storage=result.storage_url)
    return study, load_results(study)


def _write_page(path: Path, settings: dict[str, object], command: str, summary: str,
                figures: dict[str, go.Figure]) -> None:
    task = (f"{settings['dataset']} at {settings['input_size']}x{settings['input_size']}; per "
            f"trial {settings['epochs']} epoch(s) on {settings['subset']:g} of the training "
            f"split, batch {settings['batch_size']}, scored on a {settings['val_fraction']:g} "
            f"validation split; {settings['trials']} trained trials per search, seeds "
            f"0..{int(settings['seeds']) - 1}")
    if settings["schedulers"] != ["fifo"]:
        task += (f"; schedulers {', '.join(settings['schedulers'])} (mo-asha: rungs from epoch "
                 f"{settings['min_epochs']}, eta {settings['reduction_factor']}, "
                 f"{settings['asha_trials_factor']}x the trials)")
    parts = [
        *html_head("Search quality compared"),
        "<h1>Search quality: samplers and schedulers compared</h1>",
        f"<p>{html.escape(task)}. Hypervolume as in <code>search.report</code>: validation "
        "accuracy from 0 times decades of parameters below MobileNetV2 on this input. "
        "Trials are trained trials; duplicates served from the cache are free.</p>",
        f"<pre>$ {html.escape(command)}\n\n{html.escape(summary)}</pre>",
        *(fig.to_html(full_html=False, include_plotlyjs=False, div_id=key)
          for key, fig in figures.items()),
        "</body></html>",
    ]
    write_text_atomically(path, "\n".join(parts))


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    run_dir = args.out / (args.run or f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    command = "python benchmarks/bench_search_quality.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    with hold_folder(run_dir):  # a second run on it would interleave its rows with ours
        return _measure(args, settings, run_dir, command)


def _measure(args: argparse.Namespace, settings: dict[str, object], run_dir: Path,
             command: str) -> int:
    """Every search the settings name (resuming those ``run_dir`` has), then the tables,
    figures and summary."""
    trials = int(settings["trials"])
    schedulers = list(settings["schedulers"])
    methods = [(sampler, scheduler) for sampler in settings["samplers"]
               for scheduler in schedulers]
    if settings["fifo_sampler"] is not None:  # one fifo baseline, another sampler's
        methods = [(settings["fifo_sampler"], "fifo"),
                   *(method for method in methods if method[1] != "fifo")]
    labels = [_label(*method) for method in methods]
    start = time.perf_counter()
    curves, runs = [], {}
    # One Ray for every search: each would otherwise pay Ray's start-up and cold workers
    # (curves time from a search's first trial, so a warm worker is the only difference).
    with ray_session():
        for seed in range(int(settings["seeds"])):
            for sampler, scheduler in methods:  # seeds outermost: a cut-short run compares
                study, results = _search(settings, sampler, scheduler, seed, run_dir,
                                         args.max_concurrent)
                label = _label(sampler, scheduler)
                curve = search_curve(study, results, label, seed)
                curves.append(curve)
                runs[(label, seed)] = results
                print(f"{label} seed {seed}: {curve['trained'].iat[-1]} trained, "
                      f"{(curve['state'] == 'PRUNED').sum()} pruned, "
                      f"{curve['epochs'].iat[-1]} epochs, {curve['duplicate'].sum()} "
                      f"duplicate(s), hypervolume {curve['hypervolume'].iat[-1]:.4f}, "
                      f"{curve['wall_seconds'].max() / 60:.1f} min", flush=True)
    table = pd.concat(curves, ignore_index=True)
    write_text_atomically(run_dir / "curves.csv", table.to_csv(index=False))
    if schedulers == ["fifo"]:
        baseline_trials = _baseline_trials(settings)
        summary = format_summary(summarise(table, trials, baseline_trials), trials,
                                 baseline_trials)
    else:
        baseline = _label(methods[0][0], "fifo")
        summary = (format_scheduler_summary(scheduler_summary(table, baseline), baseline)
                   + "\n\n" + format_paired_accuracy(paired_accuracy(table, baseline), baseline))
    shares = cse_shares(runs)
    write_text_atomically(run_dir / "cse_shares.csv", shares.to_csv(index=False))
    rule = cse_rule(shares)
    summary += (f"\n\nThe paper's rule (BTN early, CSE late) over these {len(runs)} searches: "
                "share of CSE blocks per stage, mean over searches [95% bootstrap interval]\n"
                + format_cse_rule(rule))
    minutes = (time.perf_counter() - start) / 60
    summary += f"\n\nwall time of the whole benchmark: {minutes:.1f} min"
    colours = sampler_colours(labels)
    figures = {
        "hypervolume-trials": hypervolume_band_figure(
            by_trials(table, int(table["trained"].max())), "trials", "trained trials",
            "Hypervolume after each trained trial", colours),
        "hypervolume-time": hypervolume_band_figure(
            by_time(table), "wall_seconds", "wall seconds with a trial running",
            "Hypervolume against wall time", colours),
        "hypervolume-epochs": hypervolume_band_figure(
            by_epochs(table), "epochs", "training epochs spent by the search",
            "Hypervolume against training epochs", colours),
        "fronts": fronts_figure(runs, colours),
        "cse-share": cse_rule_figure(rule, f"{len(runs)} searches"),
    }
    _write_page(run_dir / "report.html", settings, command, summary, figures)
    write_text_atomically(run_dir / "summary.txt", f"$ {command}\n\n{summary}\n")
    print(summary)
    print(f"wrote {run_dir / 'curves.csv'}, {run_dir / 'report.html'}, "
          f"{run_dir / 'summary.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
