"""The paper's rule, BTN early and CSE late, put to searches: per stage, the share of CSE
blocks on each search's final front against the share among its dominated trials, with
95% bootstrap intervals over searches (each search one draw, so an interval says how far
another seed might move the answer)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from search.reporting.figures import cse_flags
from search.study.rank_agreement import bootstrap_interval
from search.study.results import StudyResults

__all__ = ["RULE_COLUMNS", "SHARE_COLUMNS", "cse_rule", "cse_shares", "format_cse_rule"]

SHARE_COLUMNS = ("run", "seed", "stage", "front", "dominated", "front_trials",
                 "dominated_trials")
RULE_COLUMNS = ("stage", "searches", "front", "front_low", "front_high", "dominated",
                "dominated_low", "dominated_high", "difference", "difference_low",
                "difference_high", "preferred")


def cse_shares(runs: Mapping[tuple[str, int], StudyResults]) -> pd.DataFrame:
    """One row per search (``run`` label and ``seed``) and stage: the share of CSE blocks
    among its front's networks and among its dominated ones (NaN where none has that
    stage), and how many each share is of (``front_trials``, ``dominated_trials``: one per
    distinct network, so a network proposed again counts once). Enqueued presets are left
    out (they may be on the front, and may push others off it, but were not found)."""
    rows = []
    for (label, seed), results in runs.items():
        # Presets are the study's yardsticks, not what the search found.
        complete = results.distinct_networks(
            results.complete[results.complete["preset"].fillna("") == ""])
        front = cse_flags(complete[complete["on_front"]], results.stages)
        dominated = cse_flags(complete[~complete["on_front"]], results.stages)
        for stage in front.columns:
            rows.append({
                "run": label, "seed": seed, "stage": stage,
                "front": front[stage].mean(), "dominated": dominated[stage].mean()
                if stage in dominated else np.nan,
                "front_trials": int(front[stage].notna().sum()),
                "dominated_trials": int(dominated[stage].notna().sum())
                if stage in dominated else 0,
            })
    return pd.DataFrame(rows, columns=list(SHARE_COLUMNS))


def _mean_first(x: np.ndarray, _: np.ndarray) -> float:
    return float(x.mean())


def _mean_second(_: np.ndarray, y: np.ndarray) -> float:
    return float(y.mean())


def _mean_difference(x: np.ndarray, y: np.ndarray) -> float:
    return float((x - y).mean())


def cse_rule(shares: pd.DataFrame, *, resamples: int = 2000) -> pd.DataFrame:
    """Per stage, over the searches that have both a front and a dominated share there: the
    mean CSE share on the fronts, among the dominated trials, and their difference, each
    with a 95% bootstrap interval (searches drawn with replacement, pairs kept together).
    ``preferred``: "CSE" when the difference's interval lies above 0, "BTN" below, "-" when
    it holds 0."""
    rows = []
    for stage, group in shares.groupby("stage", sort=False):
        paired = group.dropna(subset=["front", "dominated"])
        front, dominated = paired["front"].to_numpy(), paired["dominated"].to_numpy()
        row: dict[str, object] = {"stage": stage, "searches": len(paired)}
        for name, statistic in (("front", _mean_first), ("dominated", _mean_second),
                                ("difference", _mean_difference)):
            row[name] = statistic(front, dominated) if len(paired) else np.nan
            row[f"{name}_low"], row[f"{name}_high"] = (
                bootstrap_interval(statistic, front, dominated, resamples=resamples)
                if len(paired) > 1 else (np.nan, np.nan))
        low, high = row["difference_low"], row["difference_high"]
        row["preferred"] = "CSE" if low > 0 else "BTN" if high < 0 else "-"
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RULE_COLUMNS))


def format_cse_rule(rule: pd.DataFrame) -> str:
    """The rule's table, then one plain sentence per direction."""
    header = (f"{'stage':<9}{'searches':>9}{'CSE share on fronts':>24}"
              f"{'among dominated':>24}{'front - dominated':>26}{'fronts prefer':>15}")
    lines = [header, "-" * len(header)]
    for _, row in rule.iterrows():
        front, dominated, difference = (
            "{0:{3}} [{1:{3}}, {2:{3}}]".format(*row[[name, f"{name}_low", f"{name}_high"]],
                                               ".2f" if name != "difference" else "+.2f")
            for name in ("front", "dominated", "difference"))
        lines.append(f"{row.stage:<9}{row.searches:>9}{front:>24}{dominated:>24}"
                     f"{difference:>26}{row.preferred:>15}")
    for block in ("BTN", "CSE"):
        stages = [str(s) for s in rule.loc[rule["preferred"] == block, "stage"]]
        lines.append(f"fronts prefer {block} (interval of the difference clear of 0) in: "
                     f"{', '.join(stages) or 'no stage'}")
    return "\n".join(lines)
