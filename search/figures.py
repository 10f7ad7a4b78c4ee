"""The report's plotly figures, each a pure function of :class:`search.results.StudyResults`.

Accuracies on the axes are validation accuracies (what the search selected on); the
paper's points and the retrained models carry *test* accuracies and are drawn with their
own markers so the two are never mistaken for one another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from search.objectives import ACCURACY
from search.paper_points import PaperPoint
from search.results import StudyResults

__all__ = ["cse_flags", "cse_share_figure", "front_figure", "hypervolume_figure",
           "parallel_figure", "report_figures"]

_GREY, _FRONT, _PAPER, _TEST = "#b0b0b0", "#1f77b4", "#d62728", "#2ca02c"
_SIZE = {"width": 1000, "height": 560}


def _hover(frame: pd.DataFrame) -> list[str]:
    return [f"trial {n}<br>{arch}<br>{p:,.0f} params<br>val acc {a:.2%}"
            for n, arch, p, a in zip(frame["number"], frame["arch"], frame["params"],
                                     frame[ACCURACY.metric], strict=True)]


def _add_trials(fig: go.Figure, results: StudyResults) -> None:
    """Dominated trials in grey, the front as a staircase, the presets circled."""
    complete, front = results.complete, results.front.sort_values("params")
    dominated = complete[~complete["on_front"]]
    accuracy = ACCURACY.metric
    fig.add_scatter(x=dominated["params"], y=dominated[accuracy], mode="markers",
                    name="dominated", marker={"color": _GREY, "size": 7},
                    hovertext=_hover(dominated), hoverinfo="text")
    # A maximise-accuracy / minimise-params front is a staircase: flat until the next point.
    fig.add_scatter(x=front["params"], y=front[accuracy], mode="lines+markers",
                    line={"shape": "hv", "color": _FRONT}, name="Pareto front",
                    marker={"color": _FRONT, "size": 9}, hovertext=_hover(front),
                    hoverinfo="text")
    presets = complete[complete["preset"] != ""]
    if len(presets):
        fig.add_scatter(x=presets["params"], y=presets[accuracy], mode="markers+text",
                        text=presets["preset"], textposition="top center",
                        name="presets (this search)",
                        marker={"symbol": "circle-open", "size": 15, "color": "black"},
                        hovertext=_hover(presets), hoverinfo="text")


def _add_retrained(fig: go.Figure, results: StudyResults) -> None:
    """Test accuracies of exported, retrained trials, as stars."""
    tested = results.complete[results.complete["test_accuracy"].notna()]
    if len(tested):
        fig.add_scatter(x=tested["params"], y=tested["test_accuracy"], mode="markers",
                        name="retrained: test accuracy",
                        marker={"symbol": "star", "color": _TEST, "size": 13},
                        hovertext=[f"trial {n} retrained<br>test acc {a:.2%}" for n, a in
                                   zip(tested["number"], tested["test_accuracy"], strict=True)],
                        hoverinfo="text")


def _add_paper(fig: go.Figure, results: StudyResults, paper: tuple[PaperPoint, ...]) -> None:
    """The paper's reported test accuracies; open diamonds when from another dataset."""
    if not paper:
        return
    paper = tuple(sorted(paper, key=lambda p: p.params))
    elsewhere = paper[0].dataset != results.info.dataset
    fig.add_scatter(x=[p.params for p in paper], y=[p.accuracy for p in paper],
                    mode="markers+text", text=[p.label for p in paper],
                    # alternate above and below: neighbours are often close in size
                    textposition=["top center", "bottom center"] * len(paper),
                    name=(f"paper ({paper[0].dataset} test accuracy: another dataset)"
                          if elsewhere else "paper (test accuracy)"),
                    marker={"symbol": "diamond-open" if elsewhere else "diamond",
                            "color": _PAPER, "size": 12},
                    hovertext=[f"paper: {p.model} on {p.dataset}<br>{p.params:,} params<br>"
                               f"test acc {p.accuracy:.2%}"
                               + (f"<br>our preset: {p.preset}" if p.preset else "")
                               for p in paper], hoverinfo="text")
    if elsewhere:
        fig.add_annotation(text=f"The paper reports no results for {results.info.dataset}; "
                                f"open diamonds are its {paper[0].dataset} results.",
                           xref="paper", yref="paper", x=0.01, y=0.02, showarrow=False,
                           xanchor="left", font={"color": _PAPER})


def _add_preset_sizes(fig: go.Figure, results: StudyResults) -> None:
    """The size of every preset, whether or not the search ran it: the summary's budgets."""
    for name, params in results.presets["params"].items():
        fig.add_vline(x=params, line={"dash": "dot", "color": _GREY, "width": 1})
        # Annotations on a log axis take log10 coordinates (shapes take data coordinates).
        fig.add_annotation(x=np.log10(params), xref="x", y=0, yref="y domain", text=name,
                           textangle=-90, xanchor="left", yanchor="bottom", showarrow=False,
                           font={"size": 10, "color": "gray"})


def front_figure(results: StudyResults, paper: tuple[PaperPoint, ...]) -> go.Figure:
    """Validation accuracy against parameters (log x): every trial, the front, the presets,
    the paper's reported points and, where an export retrained one, its test accuracy."""
    fig = go.Figure()
    for add in (_add_trials, _add_retrained, _add_preset_sizes):
        add(fig, results)
    _add_paper(fig, results, paper)
    unplotted = (results.trials["state"] != "COMPLETE").sum()
    fig.update_layout(title=f"{results.info.name}: validation accuracy vs parameters "
                            f"({results.info.dataset}; {len(results.complete)} complete trials"
                            + (f", {unplotted} others not drawn" if unplotted else "") + ")",
                      xaxis={"title": "trainable parameters", "type": "log",
                             # 1-2-5 ticks with SI suffixes (200k, 1M) on every decade
                             "dtick": "D2", "tickformat": "~s"},
                      yaxis={"title": "accuracy", "tickformat": ".0%"}, **_SIZE)
    return fig


def hypervolume_figure(results: StudyResults) -> go.Figure:
    history = results.hypervolume_history
    fig = go.Figure(go.Scatter(x=history.index, y=history.values, mode="lines+markers",
                               line={"shape": "hv", "color": _FRONT}, name="hypervolume"))
    fig.update_layout(title=f"Hypervolume of the front after each complete trial "
                            f"(reference: {results.reference_text()})",
                      xaxis={"title": "trial number"}, yaxis={"title": "hypervolume"},
                      title_font={"size": 14}, **_SIZE)
    return fig


def cse_flags(trials: pd.DataFrame, stages: int) -> pd.DataFrame:
    """One row per trial of a trials table (:class:`StudyResults`) with an architecture,
    one column per stage: 1.0 for a CSE block, 0.0 for BTN."""
    ops = trials[[f"stage{i}_op" for i in range(1, stages + 1)]].dropna(how="all")
    flags = (ops == "cse").astype(float).where(ops.notna())
    return flags.rename(columns=lambda c: c.removesuffix("_op").replace("stage", "stage "))


def cse_share_figure(results: StudyResults) -> go.Figure:
    """Per stage, the share of CSE blocks on the front and among dominated trials: does the
    search put CSE blocks in the late, low-resolution stages as the paper does?"""
    complete = results.complete
    on_front = complete["on_front"]
    fig = go.Figure()
    for label, trials, colour in (("front", complete[on_front], _FRONT),
                                  ("dominated", complete[~on_front], _GREY)):
        ops = cse_flags(trials, results.stages)
        if len(ops):
            share = ops.mean()  # skips the NaN of trials with fewer stages
            fig.add_bar(x=share.index, y=share.values, name=f"{label} ({len(ops)} trials)",
                        marker_color=colour)
    fig.update_layout(title="Share of CSE blocks per stage (the rest are BTN blocks)",
                      barmode="group", yaxis={"title": "share of trials", "tickformat": ".0%",
                                              "range": [0, 1]}, **_SIZE)
    return fig


def parallel_figure(results: StudyResults) -> go.Figure:
    """Per-stage op, width and depth of every complete trial, coloured by validation
    accuracy (optuna-dashboard's own plots show every sampled field); fields the search
    never varied are left out."""
    complete = results.complete.dropna(subset=["stem"])
    keys = ["stem", *(f"stage{i}_{field}" for i in range(1, results.stages + 1)
                      for field in ("op", "c", "n")), "head"]
    frame = complete[keys].rename(columns=lambda k: k.replace("stage", "s").replace("_", " "))
    ops = [c for c in frame.columns if c.endswith(" op")]
    frame[ops] = (frame[ops] == "cse").astype(float)
    frame = frame.loc[:, frame.nunique() > 1]
    dimensions = [
        {"label": key, "values": frame[key], "tickvals": [0, 1], "ticktext": ["btn", "cse"]}
        if key.endswith(" op") else {"label": key, "values": frame[key]}
        for key in frame.columns
    ]
    dimensions.append({"label": "log10 params", "values": np.log10(complete["params"])})
    dimensions.append({"label": "val acc", "values": complete[ACCURACY.metric]})
    fig = go.Figure(go.Parcoords(
        line={"color": complete[ACCURACY.metric], "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": "val acc"}}},
        dimensions=dimensions,
    ))
    fig.update_layout(title="Block type (op), width (c) and depth (n) per stage, "
                            "complete trials",
                      width=min(1400, max(_SIZE["width"], 55 * len(dimensions))),
                      height=_SIZE["height"])
    return fig


def report_figures(results: StudyResults, paper: tuple[PaperPoint, ...]) -> dict[str, go.Figure]:
    """Every figure of the report, keyed by an id that is also its file name and its
    id in optuna-dashboard (saving under the same id again replaces it there)."""
    return {
        "front": front_figure(results, paper),
        "hypervolume": hypervolume_figure(results),
        "cse-share": cse_share_figure(results),
        "parallel": parallel_figure(results),
    }
