"""Search quality as numbers: hypervolume curves of searches run with different samplers,
and how many trials each sampler needs to match random search.

Hypervolume is the report's (:func:`search.study.objectives.hypervolume_space`: accuracy from 0,
costs in log10 decades below MobileNetV2). Trial counts are *trained* trials, the ones that
count towards ``--trials`` (:func:`search.study.schema.budget_trials`): a duplicate served from
the cache costs no training, so it moves neither a curve's x nor (its values being those of
an earlier trial) its y.
"""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.study.objectives import ACCURACY, PARAMS, hypervolume_space, reference_costs
from search.study.pareto import hypervolume_history
from search.study.results import StudyResults
from search.study.schema import ARCH, CACHED_FROM, VAL_ACCURACY_PER_EPOCH, budget_trials, is_cached

__all__ = ["BASELINE", "CURVE_COLUMNS", "by_epochs", "by_time", "by_trials",
           "format_scheduler_summary", "format_summary", "scheduler_summary", "search_curve",
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
    count only as far as it went; a duplicate's none); ``wall_seconds``: since the
    search's first trial started;
    ``trial_seconds``: the trial's own, from its ask to its outcome.
    """
    finished = sorted((t for t in study.get_trials(deepcopy=False) if t.state.is_finished()),
                      key=lambda t: (t.datetime_complete, t.number))
    counted = {t.number for t in budget_trials(study)}
    first_start = min(t.datetime_start for t in study.get_trials(deepcopy=False))
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
        "wall_seconds": [(t.datetime_complete - first_start).total_seconds() for t in finished],
        "trial_seconds": [t.duration.total_seconds() for t in finished],
        ACCURACY.metric: frame[ACCURACY.metric].to_numpy(),
        PARAMS.metric: frame[PARAMS.metric].to_numpy(),
        ARCH: frame[ARCH].to_numpy(),
    })
    return curve[list(CURVE_COLUMNS)]


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


def _first_reaching(mean: pd.Series, target: float) -> int | None:
    """The first trial count whose mean hypervolume is at least ``target``."""
    reached = mean.index[mean.to_numpy() >= target - 1e-12]
    return int(reached[0]) if len(reached) else None


def summarise(curves: pd.DataFrame, trials: int, baseline: str = BASELINE) -> pd.DataFrame:
    """One row per sampler: final hypervolume over the seeds (mean, standard deviation, min,
    max), duplicates and wall minutes per search, the trained-trial count at which its mean
    curve first reaches the baseline's final mean, and ``ratio`` = that count for the
    baseline / that count for the sampler (how many trials of the baseline one trial of the
    sampler is worth; NaN when the sampler never reaches it)."""
    band = by_trials(curves, trials).set_index(["sampler", "trials"])["mean"]
    finals = curves.groupby(_RUN).agg(
        hypervolume=("hypervolume", "last"), duplicates=("duplicate", "sum"),
        wall_minutes=("wall_seconds", lambda s: s.max() / 60))
    table = finals.groupby("sampler").agg(
        seeds=("hypervolume", "size"), hv_mean=("hypervolume", "mean"),
        hv_sd=("hypervolume", "std"), hv_min=("hypervolume", "min"),
        hv_max=("hypervolume", "max"), duplicates=("duplicates", "mean"),
        wall_minutes=("wall_minutes", "mean"))
    target = table.loc[baseline, "hv_mean"] if baseline in table.index else np.nan
    reach = {s: _first_reaching(band.loc[s], target) for s in table.index}
    table["trials_to_baseline"] = pd.Series(reach, dtype="Int64")
    table["ratio"] = (table.loc[baseline, "trials_to_baseline"] / table["trials_to_baseline"]
                      if baseline in table.index else np.nan)
    return table.sort_values("hv_mean", ascending=False)


def format_summary(table: pd.DataFrame, trials: int, baseline: str = BASELINE) -> str:
    """The summary as a terminal table."""
    header = (f"{'sampler':<18}{'final hypervolume (mean ± sd, min-max)':>40}"
              f"{'dup/run':>9}{'min/run':>9}{f'trials to {baseline} final':>24}"
              f"{f'{baseline}/sampler':>16}")
    lines = [header, "-" * len(header)]
    for sampler, row in table.iterrows():
        reach = row["trials_to_baseline"]
        lines.append(
            f"{sampler:<18}"
            f"{f'{row.hv_mean:.4f} ± {row.hv_sd:.4f} ({row.hv_min:.4f}-{row.hv_max:.4f})':>40}"
            f"{row.duplicates:>9.1f}{row.wall_minutes:>9.1f}"
            f"{(f'{reach} of {trials}' if pd.notna(reach) else f'not in {trials}'):>24}"
            f"{(f'{row.ratio:.2f}x' if pd.notna(row.ratio) else '< 1x'):>16}")
    return "\n".join(lines)


def _first_x_reaching(band: pd.DataFrame, x: str, target: float) -> float:
    """The smallest ``x`` at which the band's mean is at least ``target`` (NaN: never)."""
    reached = band.loc[band["mean"].to_numpy() >= target - 1e-12, x]
    return float(reached.iloc[0]) if len(reached) else np.nan


def scheduler_summary(curves: pd.DataFrame, baseline: str, points: int = 400) -> pd.DataFrame:
    """One row per run label (``sampler`` column): final hypervolume over the seeds, epochs
    and wall minutes per search, and the epochs and wall seconds at which its mean curve
    first reaches ``baseline``'s final mean; ``epoch_ratio`` = those epochs / the
    baseline's mean epochs per search (below 1: cheaper), ``time_ratio`` likewise."""
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
    return table


def format_scheduler_summary(table: pd.DataFrame, baseline: str) -> str:
    """The scheduler comparison as a terminal table."""
    header = (f"{'run':<16}{'final hypervolume':>22}{'trials':>8}{'epochs':>8}{'min':>7}"
              f"{f'epochs to {baseline} final':>26}{'ratio':>7}"
              f"{f'min to {baseline} final':>24}{'ratio':>7}")
    lines = [header, "-" * len(header)]
    for label, row in table.iterrows():
        reach_epochs = (f"{row.epochs_to_baseline:.0f}" if pd.notna(row.epochs_to_baseline)
                        else "never")
        reach_minutes = (f"{row.seconds_to_baseline / 60:.1f}"
                         if pd.notna(row.seconds_to_baseline) else "never")
        lines.append(
            f"{label:<16}{f'{row.hv_mean:.4f} ± {row.hv_sd:.4f}':>22}{row.trials:>8.0f}"
            f"{row.epochs:>8.0f}{row.wall_minutes:>7.1f}{reach_epochs:>26}"
            f"{row.epoch_ratio:>7.2f}{reach_minutes:>24}{row.time_ratio:>7.2f}")
    return "\n".join(lines)
