"""Search quality as numbers: hypervolume curves of searches run with different samplers
or schedulers, and how they compare seed by seed with random search or fifo.

Hypervolume is the report's (:func:`search.study.objectives.hypervolume_space`: accuracy from 0,
costs in log10 decades below MobileNetV2). Trial counts are *trained* trials, the ones that
count towards ``--trials`` (:func:`search.study.schema.budget_trials`): a duplicate served from
the cache costs no training, so it moves neither a curve's x nor (its values being those of
an earlier trial) its y.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.study.objectives import ACCURACY, PARAMS, hypervolume_space, reference_costs
from search.study.pareto import hypervolume_history
from search.study.rank_agreement import bootstrap_interval
from search.study.results import StudyResults
from search.study.schema import ARCH, CACHED_FROM, VAL_ACCURACY_PER_EPOCH, budget_trials, is_cached

__all__ = ["BASELINE", "CURVE_COLUMNS", "busy_seconds", "by_epochs", "by_time", "by_trials",
           "format_paired_accuracy", "format_scheduler_summary", "format_summary",
           "hypervolume_after", "paired_accuracy", "scheduler_summary", "search_curve",
           "summarise"]

BASELINE = "random"
CURVE_COLUMNS = ("sampler", "seed", "trial", "state", "duplicate", CACHED_FROM, "trained",
                 "epochs", "hypervolume", "wall_seconds", "trial_seconds", ACCURACY.metric,
                 PARAMS.metric, ARCH)
_RUN = ["sampler", "seed"]


def search_curve(study: optuna.Study, results: StudyResults, sampler: str,
                 seed: int) -> pd.DataFrame:
    """One row per finished trial of one search, in the order the trials finished.

    ``hypervolume``: of the complete trials finished so far; ``trained``: trials so far that
    count towards the budget; ``epochs``: training epochs spent so far (a pruned trial's
    count only as far as it went; a duplicate's none); ``wall_seconds``: time so far during
    which at least one of the search's trials was running, so that the hours between an
    interrupted search and its resume are not charged to it;
    ``trial_seconds``: the trial's own, from its ask to its outcome.
    """
    finished = sorted((t for t in study.get_trials(deepcopy=False) if t.state.is_finished()),
                      key=lambda t: (t.datetime_complete, t.number))
    counted = {t.number for t in budget_trials(study)}
    running = [(t.datetime_start, t.datetime_complete) for t in study.get_trials(deepcopy=False)
               if t.datetime_start is not None and t.datetime_complete is not None]
    numbers = [t.number for t in finished]
    frame = results.trials.loc[numbers]
    objectives = results.info.objectives
    complete = (frame["state"] == TrialState.COMPLETE.name).to_numpy()
    points, reference = hypervolume_space(frame.loc[complete, list(results.info.metric_names)],
                                          objectives, reference_costs(results.presets, objectives))
    hypervolume = np.full(len(frame), np.nan)
    hypervolume[complete] = hypervolume_history(points, reference)
    curve = pd.DataFrame({
        "sampler": sampler,
        "seed": seed,
        "trial": numbers,
        "state": frame["state"].to_numpy(),
        "duplicate": frame[CACHED_FROM].notna().to_numpy(),
        CACHED_FROM: frame[CACHED_FROM].to_numpy(),
        "trained": np.cumsum([n in counted for n in numbers]),
        "epochs": np.cumsum([0 if is_cached(t) else
                             len(t.user_attrs.get(VAL_ACCURACY_PER_EPOCH) or ())
                             for t in finished]),
        "hypervolume": pd.Series(hypervolume).ffill().fillna(0.0).to_numpy(),
        "wall_seconds": busy_seconds(running, [t.datetime_complete for t in finished]),
        "trial_seconds": [t.duration.total_seconds() for t in finished],
        ACCURACY.metric: frame[ACCURACY.metric].to_numpy(),
        PARAMS.metric: frame[PARAMS.metric].to_numpy(),
        ARCH: frame[ARCH].to_numpy(),
    })
    return curve[list(CURVE_COLUMNS)]


def busy_seconds(intervals: list[tuple[datetime, datetime]],
                 moments: list[datetime]) -> list[float]:
    """For each of ``moments``, the seconds before it covered by at least one of
    ``intervals`` (start, end)."""
    merged: list[list[datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [sum(max(0.0, (min(end, moment) - start).total_seconds()) for start, end in merged)
            for moment in moments]


def _band(per_run: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean, min and max over seeds of ``hypervolume`` per sampler and ``x``."""
    stats = per_run.groupby(["sampler", x])["hypervolume"].agg(["mean", "min", "max"])
    return stats.reset_index()


def by_trials(curves: pd.DataFrame, trials: int) -> pd.DataFrame:
    """Per sampler and trained-trial count 1..``trials``: mean, min and max hypervolume over
    the seeds; a search that stopped early keeps its last value."""
    def one_run(run: pd.DataFrame) -> pd.Series:
        after = run.groupby("trained")["hypervolume"].last()
        return after.reindex(range(1, trials + 1)).ffill().fillna(0.0)

    per_run = (curves.groupby(_RUN)[["trained", "hypervolume"]].apply(one_run)
               .stack().rename("hypervolume").reset_index())
    per_run.columns = [*_RUN, "trials", "hypervolume"]
    return _band(per_run, "trials")


def _on_grid(curves: pd.DataFrame, x: str, points: int) -> pd.DataFrame:
    """Each run's hypervolume on a common grid of ``x`` (a column that grows along a run):
    0 before the run's first trial, its final value after its last."""
    grid = np.linspace(0.0, curves[x].max(), points)

    def one_run(run: pd.DataFrame) -> pd.Series:
        done = np.searchsorted(run[x].to_numpy(), grid, side="right")
        values = np.concatenate([[0.0], run["hypervolume"].to_numpy()])
        return pd.Series(values[done], index=pd.Index(grid, name=x))

    per_run = (curves.groupby(_RUN)[[x, "hypervolume"]].apply(one_run)
               .stack().rename("hypervolume").reset_index())
    per_run.columns = [*_RUN, x, "hypervolume"]
    return per_run


def by_time(curves: pd.DataFrame, points: int = 200) -> pd.DataFrame:
    """Per sampler on a common grid of wall seconds: mean, min and max hypervolume over the
    seeds."""
    return _band(_on_grid(curves, "wall_seconds", points), "wall_seconds")


def by_epochs(curves: pd.DataFrame, points: int = 200) -> pd.DataFrame:
    """Per sampler on a common grid of training epochs spent: mean, min and max hypervolume
    over the seeds."""
    return _band(_on_grid(curves, "epochs", points), "epochs")


def hypervolume_after(curves: pd.DataFrame, trials: int) -> pd.Series:
    """Per (sampler, seed): the hypervolume once ``trials`` trials were trained (a search
    that trained fewer: its last)."""
    def within(run: pd.DataFrame) -> float:
        values = run.loc[run["trained"] <= trials, "hypervolume"]
        return float(values.iat[-1]) if len(values) else 0.0

    return curves.groupby(_RUN)[["trained", "hypervolume"]].apply(within)


def _ratio_of_means(x: np.ndarray, y: np.ndarray) -> float:
    return float(x.mean() / y.mean()) if y.mean() > 0 else float("nan")


def summarise(curves: pd.DataFrame, trials: int, baseline_trials: int | None = None,
              baseline: str = BASELINE) -> pd.DataFrame:
    """One row per sampler: final hypervolume over the seeds (mean, standard deviation, min,
    max), trained trials, duplicates and wall minutes per search; ``hv_at_n``, the mean
    hypervolume after ``trials`` trials; and ``ratio``, that mean over the baseline's mean
    after ``baseline_trials`` (default ``trials``) on the same seeds, with a 95% bootstrap
    interval over seeds (``ratio_low``, ``ratio_high``) and the ratio of each seed
    (``per_seed``). A ratio above 1 at ``baseline_trials = 2 * trials``: the sampler's N
    trials beat the baseline's 2N."""
    finals = curves.groupby(_RUN).agg(
        hypervolume=("hypervolume", "last"), trained=("trained", "last"),
        duplicates=("duplicate", "sum"),
        wall_minutes=("wall_seconds", lambda s: s.max() / 60))
    table = finals.groupby("sampler").agg(
        seeds=("hypervolume", "size"), hv_mean=("hypervolume", "mean"),
        hv_sd=("hypervolume", "std"), hv_min=("hypervolume", "min"),
        hv_max=("hypervolume", "max"), trials=("trained", "mean"),
        duplicates=("duplicates", "mean"), wall_minutes=("wall_minutes", "mean"))
    at_n = hypervolume_after(curves, trials)
    table["hv_at_n"] = at_n.groupby(level="sampler").mean()
    for column in ("ratio", "ratio_low", "ratio_high"):
        table[column] = np.nan
    table["per_seed"] = [()] * len(table)
    if baseline in table.index:
        base = hypervolume_after(curves, baseline_trials or trials).loc[baseline]
        for sampler in table.index:
            mine = at_n.loc[sampler]
            seeds = mine.index.intersection(base.index)
            x, y = mine.loc[seeds].to_numpy(), base.loc[seeds].to_numpy()
            table.loc[sampler, "ratio"] = _ratio_of_means(x, y)
            low, high = bootstrap_interval(_ratio_of_means, x, y)
            table.loc[sampler, ["ratio_low", "ratio_high"]] = low, high
            table.at[sampler, "per_seed"] = tuple(float(a / b) if b > 0 else float("nan")
                                                  for a, b in zip(x, y, strict=True))
    return table.sort_values("hv_mean", ascending=False)


def _seed_list(values: tuple[float, ...]) -> str:
    return ", ".join("never" if np.isnan(v) else f"{v:.2f}" for v in values)


def format_summary(table: pd.DataFrame, trials: int, baseline_trials: int | None = None,
                   baseline: str = BASELINE) -> str:
    """The summary as a terminal table."""
    baseline_trials = baseline_trials or trials
    # Without a baseline search there is no ratio to show, and no column for it.
    width = 32 if table["ratio"].notna().any() else 0
    against = f"/ {baseline} after {baseline_trials} [95%]" if width else ""
    header = (f"{'sampler':<18}{'final hypervolume (mean ± sd, min-max)':>40}{'trials':>8}"
              f"{'dup/run':>9}{'min/run':>9}{f'after {trials}':>11}{against:>{width}}"
              "   per seed")
    lines = [header, "-" * len(header)]
    for sampler, row in table.iterrows():
        ratio = ("" if not width else "-" if pd.isna(row.ratio) else
                 f"{row.ratio:.3f} [{row.ratio_low:.3f}, {row.ratio_high:.3f}]")
        lines.append(
            f"{sampler:<18}"
            f"{f'{row.hv_mean:.4f} ± {row.hv_sd:.4f} ({row.hv_min:.4f}-{row.hv_max:.4f})':>40}"
            f"{row.trials:>8.0f}{row.duplicates:>9.1f}{row.wall_minutes:>9.1f}"
            f"{row.hv_at_n:>11.4f}{ratio:>{width}}   {_seed_list(row.per_seed)}")
    return "\n".join(lines)


def _first_x_reaching(band: pd.DataFrame, x: str, target: float) -> float:
    """The smallest ``x`` at which the band's mean is at least ``target`` (NaN: never)."""
    reached = band.loc[band["mean"].to_numpy() >= target - 1e-12, x]
    return float(reached.iloc[0]) if len(reached) else np.nan


def _epochs_to_reach(run: pd.DataFrame, target: float) -> float:
    """The epochs a run had spent when its hypervolume first reached ``target`` (NaN:
    never)."""
    reached = run.loc[run["hypervolume"].to_numpy() >= target - 1e-12, "epochs"]
    return float(reached.iloc[0]) if len(reached) else np.nan


def _hypervolume_at(run: pd.DataFrame, epochs: float) -> float:
    """A run's hypervolume once it had spent ``epochs`` training epochs (0 before its first
    complete trial)."""
    spent = run.loc[run["epochs"].to_numpy() <= epochs + 1e-9, "hypervolume"]
    return float(spent.iloc[-1]) if len(spent) else 0.0


def _mean(x: np.ndarray, _: np.ndarray) -> float:
    return float(x.mean())


def scheduler_summary(curves: pd.DataFrame, baseline: str, points: int = 400) -> pd.DataFrame:
    """One row per run label (``sampler`` column): final hypervolume over the seeds, epochs
    and wall minutes per search, and the epochs and wall seconds at which its mean curve
    first reaches ``baseline``'s final mean; ``epoch_ratio`` = those epochs / the
    baseline's mean epochs per search (below 1: cheaper), ``time_ratio`` likewise.

    Seed by seed, against the baseline's search of the same seed: ``per_seed`` = the epochs
    at which the run reached that search's final hypervolume / that search's epochs (NaN:
    never), ``seed_ratio`` their mean with a 95% bootstrap interval over seeds
    (``seed_ratio_low``, ``seed_ratio_high``; NaN when a seed never got there) and
    ``worst_seed`` their largest (NaN: a seed never got there); ``at_third`` = the run's
    hypervolume after a third of that search's epochs / that search's final (how close a
    seed that misses the 1/3 goal came)."""
    finals = curves.groupby(_RUN).agg(hypervolume=("hypervolume", "last"),
                                      epochs=("epochs", "last"),
                                      wall_seconds=("wall_seconds", "max"),
                                      trials=("trained", "last"))
    table = finals.groupby("sampler").agg(
        seeds=("hypervolume", "size"), hv_mean=("hypervolume", "mean"),
        hv_sd=("hypervolume", "std"), trials=("trials", "mean"), epochs=("epochs", "mean"),
        wall_minutes=("wall_seconds", lambda v: v.mean() / 60))
    target = table.loc[baseline, "hv_mean"]
    epochs_band, time_band = by_epochs(curves, points), by_time(curves, points)
    for label in table.index:
        table.loc[label, "epochs_to_baseline"] = _first_x_reaching(
            epochs_band[epochs_band["sampler"] == label], "epochs", target)
        table.loc[label, "seconds_to_baseline"] = _first_x_reaching(
            time_band[time_band["sampler"] == label], "wall_seconds", target)
    table["epoch_ratio"] = table["epochs_to_baseline"] / table.loc[baseline, "epochs"]
    table["time_ratio"] = (table["seconds_to_baseline"]
                           / (table.loc[baseline, "wall_minutes"] * 60))
    base = finals.loc[baseline]
    runs = dict(tuple(curves.groupby(_RUN)))
    paired = {label: [(runs[(label, seed)], base.loc[seed]) for seed in finals.loc[label].index
                      if seed in base.index] for label in table.index}
    per_seed = {label: tuple(_epochs_to_reach(run, fifo.hypervolume) / fifo.epochs
                             for run, fifo in pairs) for label, pairs in paired.items()}
    table["per_seed"] = pd.Series(per_seed)
    table["at_third"] = pd.Series({
        label: tuple(_hypervolume_at(run, fifo.epochs / 3) / fifo.hypervolume
                     for run, fifo in pairs) for label, pairs in paired.items()})
    for label, ratios in per_seed.items():
        values = np.array(ratios)
        finite = len(values) > 0 and bool(np.isfinite(values).all())
        low, high = bootstrap_interval(_mean, values, values) if finite else (np.nan, np.nan)
        table.loc[label, ["seed_ratio", "seed_ratio_low", "seed_ratio_high", "worst_seed"]] = (
            values.mean() if finite else np.nan, low, high,
            values.max() if finite else np.nan)
    return table


def _label_width(labels: Iterable[str]) -> int:
    """Width of a table's first column: 16, or wider for a long label such as
    ``tpe-spread_mo-asha``, so the columns after it stay aligned."""
    return max([16, *(len(label) + 2 for label in labels)])


def format_scheduler_summary(table: pd.DataFrame, baseline: str) -> str:
    """The scheduler comparison as a terminal table, then its seed-by-seed ratios."""
    w = _label_width(table.index)
    reach, reach_min = f"epochs to {baseline} final", f"min to {baseline} final"
    rw, mw = max(26, len(reach) + 2), max(24, len(reach_min) + 2)
    header = (f"{'run':<{w}}{'final hypervolume':>22}{'trials':>8}{'epochs':>8}{'min':>7}"
              f"{reach:>{rw}}{'ratio':>7}{reach_min:>{mw}}{'ratio':>7}")
    lines = [header, "-" * len(header)]
    for label, row in table.iterrows():
        reach_epochs = (f"{row.epochs_to_baseline:.0f}" if pd.notna(row.epochs_to_baseline)
                        else "never")
        reach_minutes = (f"{row.seconds_to_baseline / 60:.1f}"
                         if pd.notna(row.seconds_to_baseline) else "never")
        lines.append(
            f"{label:<{w}}{f'{row.hv_mean:.4f} ± {row.hv_sd:.4f}':>22}{row.trials:>8.0f}"
            f"{row.epochs:>8.0f}{row.wall_minutes:>7.1f}{reach_epochs:>{rw}}"
            f"{row.epoch_ratio:>7.2f}{reach_minutes:>{mw}}{row.time_ratio:>7.2f}")
    lines += ["", f"Seed by seed: epochs to reach the same seed's {baseline} final hypervolume "
                  f"/ that search's epochs"]
    for label, row in table.drop(index=baseline).iterrows():
        mean = (f"mean {row.seed_ratio:.2f} [{row.seed_ratio_low:.2f}, "
                f"{row.seed_ratio_high:.2f}], worst {row.worst_seed:.2f}"
                if pd.notna(row.seed_ratio) else "a seed never got there")
        lines.append(f"{label:<{w}}{mean}; per seed {_seed_list(row.per_seed)}")
    # The baseline's own line says how much its last two thirds added: a run cannot reach
    # its final at a third by being merely as good per epoch.
    lines += ["", f"Seed by seed: hypervolume after a third of the same seed's {baseline} "
                  f"epochs / that search's final ({baseline} itself first)"]
    order = [baseline, *table.index.drop(baseline)]
    lines += [f"{label:<{w}}{_seed_list(row.at_third)}"
              for label, row in table.loc[order].iterrows()]
    return "\n".join(lines)


def paired_accuracy(curves: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Architectures that a run and ``baseline`` both trained to the end on the same seed
    (same split, same training seed, so only the run's way of training differs: under
    mo-asha, the schedule's restarts at the rungs): one row per pair, with ``accuracy``
    (the run's), ``baseline_accuracy`` and ``difference`` in points."""
    trained = curves[(curves["state"] == TrialState.COMPLETE.name) & ~curves["duplicate"]]
    base = trained[trained["sampler"] == baseline].drop_duplicates(["seed", ARCH])
    pairs = trained[trained["sampler"] != baseline].drop_duplicates(["sampler", "seed", ARCH]) \
        .merge(base[["seed", ARCH, ACCURACY.metric]], on=["seed", ARCH],
               suffixes=("", "_baseline"))
    return pd.DataFrame({
        "sampler": pairs["sampler"], "seed": pairs["seed"], ARCH: pairs[ARCH],
        PARAMS.metric: pairs[PARAMS.metric],
        "accuracy": pairs[ACCURACY.metric],
        "baseline_accuracy": pairs[f"{ACCURACY.metric}_baseline"],
        "difference": 100 * (pairs[ACCURACY.metric] - pairs[f"{ACCURACY.metric}_baseline"]),
    })


def format_paired_accuracy(pairs: pd.DataFrame, baseline: str) -> str:
    """Per run: how many architectures it shares with ``baseline``, and their accuracy
    difference, mean with a 95% bootstrap interval over the pairs, and each pair's."""
    lines = [f"Architectures trained to the end by a run and by {baseline} on the same seed: "
             f"validation accuracy, run minus {baseline}, in points"]
    w = _label_width(pairs["sampler"])
    for label, rows in pairs.groupby("sampler"):
        values = rows["difference"].to_numpy()
        low, high = bootstrap_interval(_mean, values, values)
        each = ", ".join(f"{v:+.1f} (seed {seed})"
                         for v, seed in zip(values, rows["seed"], strict=True))
        lines.append(f"{label:<{w}}{len(values)} pair(s): mean {values.mean():+.2f} "
                     f"[{low:+.2f}, {high:+.2f}]; {each}")
    if len(lines) == 1:
        lines.append("(none)")
    return "\n".join(lines)
