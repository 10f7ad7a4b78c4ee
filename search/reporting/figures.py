"""The report's plotly figures, each a pure function of :class:`search.study.results.StudyResults`.

Accuracies on the axes are validation accuracies (what the search selected on); the
paper's points and the retrained models carry *test* accuracies and are drawn with their
own markers so the two are never mistaken for one another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cse_nets.latency import OpComparison
from search.reporting.paper_points import PaperPoint
from search.reporting.trust import MIN_RANKED, rank_agreement, retrained
from search.study.objectives import ACCURACY, PARAMS, Objective
from search.study.results import StudyResults
from search.study.schema import ARCH, PARTIAL_ACCURACY, PRESET, PRUNED_EPOCH, TEST_ACCURACY

__all__ = ["PROXY_FIGURE", "REFERENCE_OPS", "cse_flags", "cse_share_figure", "front_figure",
           "hypervolume_figure", "latency_front_figure", "op_latency_figure", "parallel_figure",
           "proxy_figure", "report_figures"]

REFERENCE_OPS = "paper-mix"  # whose stages the op-latency figure compares
PROXY_FIGURE = "proxy-vs-retrained"  # drawn only once a trial has been retrained

_GREY, _FRONT, _PAPER, _TEST = "#b0b0b0", "#1f77b4", "#d62728", "#2ca02c"
_SIZE = {"width": 1000, "height": 560}
_PATTERNS = ("", "/")  # one bar fill per target of the op-latency figure


def _hover(frame: pd.DataFrame) -> list[str]:
    return [f"trial {n}<br>{arch}<br>{p:,.0f} params<br>val acc {a:.2%}"
            for n, arch, p, a in zip(frame["number"], frame[ARCH], frame[PARAMS.metric],
                                     frame[ACCURACY.metric], strict=True)]


def _drawable_pruned(results: StudyResults, x: str) -> pd.DataFrame:
    return results.pruned.dropna(subset=[x, PARTIAL_ACCURACY])


def _add_pruned(fig: go.Figure, results: StudyResults, x: str) -> None:
    """Trials the scheduler stopped early, faded, at the accuracy of the epoch they reached:
    that accuracy is not comparable with the full-budget ones the front is made of."""
    pruned = _drawable_pruned(results, x)
    if pruned.empty:
        return
    hover = [f"trial {n} pruned at epoch {e} (rung {k}), partial accuracy {a:.2%}<br>{arch}"
             for n, e, k, a, arch in zip(pruned["number"], pruned[PRUNED_EPOCH],
                                         pruned["rung"], pruned[PARTIAL_ACCURACY],
                                         pruned[ARCH], strict=True)]
    fig.add_scatter(x=pruned[x], y=pruned[PARTIAL_ACCURACY], mode="markers",
                    name="pruned (partial accuracy at the epoch reached)", opacity=0.25,
                    marker={"color": _GREY, "size": 7, "symbol": "x"},
                    hovertext=hover, hoverinfo="text")


def _add_trials(fig: go.Figure, results: StudyResults, x: str = PARAMS.metric) -> None:
    """Pruned trials faded, dominated trials in grey, the front against ``x`` as a
    staircase, presets circled."""
    _add_pruned(fig, results, x)  # first, so that complete trials are drawn over them
    complete = results.complete.dropna(subset=[x])
    front = results.front_against(x).sort_values(x)
    dominated = complete[~complete.index.isin(front.index)]
    accuracy = ACCURACY.metric
    fig.add_scatter(x=dominated[x], y=dominated[accuracy], mode="markers",
                    name="dominated", marker={"color": _GREY, "size": 7},
                    hovertext=_hover(dominated), hoverinfo="text")
    # A maximise-accuracy / minimise-cost front is a staircase: flat until the next point.
    fig.add_scatter(x=front[x], y=front[accuracy], mode="lines+markers",
                    line={"shape": "hv", "color": _FRONT}, name="Pareto front",
                    marker={"color": _FRONT, "size": 9}, hovertext=_hover(front),
                    hoverinfo="text")
    presets = complete[complete[PRESET] != ""]
    if len(presets):
        fig.add_scatter(x=presets[x], y=presets[accuracy], mode="markers+text",
                        text=presets[PRESET], textposition="top center",
                        name="presets (this search)",
                        marker={"symbol": "circle-open", "size": 15, "color": "black"},
                        hovertext=_hover(presets), hoverinfo="text")


def _add_retrained(fig: go.Figure, results: StudyResults) -> None:
    """Test accuracies of exported, retrained trials, as stars."""
    tested = results.complete[results.complete[TEST_ACCURACY].notna()]
    if len(tested):
        fig.add_scatter(x=tested[PARAMS.metric], y=tested[TEST_ACCURACY], mode="markers",
                        name="retrained: test accuracy",
                        marker={"symbol": "star", "color": _TEST, "size": 13},
                        hovertext=[f"trial {n} retrained<br>test acc {a:.2%}" for n, a in
                                   zip(tested["number"], tested[TEST_ACCURACY], strict=True)],
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


def _add_preset_sizes(fig: go.Figure, results: StudyResults, x: str = PARAMS.metric) -> None:
    """Every preset's cost, whether or not the search ran it: the summary's budgets."""
    for name, cost in results.presets[x].items():
        fig.add_vline(x=cost, line={"dash": "dot", "color": _GREY, "width": 1})
        # Annotations on a log axis take log10 coordinates (shapes take data coordinates).
        fig.add_annotation(x=np.log10(cost), xref="x", y=0, yref="y domain", text=name,
                           textangle=-90, xanchor="left", yanchor="bottom", showarrow=False,
                           font={"size": 10, "color": "gray"})


def _front_layout(fig: go.Figure, results: StudyResults, x: str, against: str, title: str, *,
                  tickformat: str) -> None:
    pruned = len(_drawable_pruned(results, x))
    unplotted = (results.trials["state"] != "COMPLETE").sum() - pruned
    fig.update_layout(title=f"{results.info.name}: validation accuracy vs {against} "
                            f"({results.info.dataset}; {len(results.complete)} complete trials"
                            + (f", {pruned} pruned (faded)" if pruned else "")
                            + (f", {unplotted} others not drawn" if unplotted else "") + ")",
                      xaxis={"title": title, "type": "log",
                             # 1-2-5 ticks on every decade
                             "dtick": "D2", "tickformat": tickformat},
                      yaxis={"title": "accuracy", "tickformat": ".0%"}, **_SIZE)


def front_figure(results: StudyResults, paper: tuple[PaperPoint, ...]) -> go.Figure:
    """Validation accuracy against parameters (log x): every trial, the front, the presets,
    the paper's reported points and, where an export retrained one, its test accuracy."""
    fig = go.Figure()
    for add in (_add_trials, _add_retrained, _add_preset_sizes):
        add(fig, results)
    _add_paper(fig, results, paper)
    _front_layout(fig, results, PARAMS.metric, "parameters", "trainable parameters",
                  tickformat="~s")  # SI suffixes: 200k, 1M
    return fig


def latency_front_figure(results: StudyResults, latency: Objective) -> go.Figure:
    """Validation accuracy against the latency the search minimised (log x), with the
    presets' latencies on the same target."""
    fig = go.Figure()
    _add_trials(fig, results, x=latency.metric)
    _add_preset_sizes(fig, results, x=latency.metric)
    _front_layout(fig, results, latency.metric, "latency",
                  f"{latency.unit} on {latency.target}",
                  tickformat="~g")  # milliseconds as plain numbers: 0.5, 1, 2
    return fig


def op_latency_figure(comparisons: Mapping[str, Sequence[OpComparison]],
                      reference: str) -> go.Figure:
    """Per stage of ``reference``: the table latency of the stage built from BTN blocks and
    from CSE blocks at the same resolution, widths and stride, one pair of bars per target
    (the study's, then int8 where it is measured: :func:`search.report.op_comparisons`)."""
    first = next(iter(comparisons.values()))
    labels = [f"{r.part}<br>{r.size}px {r.c_in}->{r.c_out}<br>uses {r.op}" for r in first]
    fig = go.Figure()
    for i, (target, rows) in enumerate(comparisons.items()):
        fig.add_bar(x=labels, y=[r.btn_s * 1e3 for r in rows], name=f"as BTN blocks, {target}",
                    marker_color=_GREY, marker_pattern_shape=_PATTERNS[i % len(_PATTERNS)])
        fig.add_bar(x=labels, y=[r.cse_s * 1e3 for r in rows], name=f"as CSE blocks, {target}",
                    marker_color=_FRONT, marker_pattern_shape=_PATTERNS[i % len(_PATTERNS)],
                    text=[f"{r.cse_s / r.btn_s:.2f}x" if r.btn_s > 0 else "" for r in rows],
                    textposition="outside")
    fig.update_layout(title=f"Where CSE blocks save or cost latency: {reference}'s stages on "
                            f"{' and '.join(comparisons)}, as BTN vs as CSE blocks "
                            "(label: CSE / BTN)",
                      barmode="group", yaxis={"title": "predicted ms (batch 1)"},
                      title_font={"size": 14}, **_SIZE)
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
    dimensions.append({"label": "log10 params", "values": np.log10(complete[PARAMS.metric])})
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


def proxy_figure(results: StudyResults) -> go.Figure:
    """Per retrained trial, the proxy the search ranked it by (validation accuracy after the
    search's short training) against its test accuracy after retraining: the closer the
    two orders, the more the search's ranking can be trusted."""
    tested = retrained(results.trials)
    hover = [f"trial {n}<br>{arch}<br>{p:,.0f} params<br>val acc {a:.2%}<br>test acc {t:.2%}"
             for n, arch, p, a, t in zip(tested["number"], tested[ARCH], tested[PARAMS.metric],
                                         tested[ACCURACY.metric], tested[TEST_ACCURACY],
                                         strict=True)]
    fig = go.Figure(go.Scatter(x=tested[ACCURACY.metric], y=tested[TEST_ACCURACY],
                               mode="markers+text", text=[f"#{n}" for n in tested["number"]],
                               textposition="top center", name="retrained trials",
                               marker={"symbol": "star", "color": _TEST, "size": 13},
                               hovertext=hover, hoverinfo="text"))
    agreement = rank_agreement(results.trials)
    ranks = (agreement.text() if agreement is not None
             else f"too few to rank (fewer than {MIN_RANKED})")
    fig.update_layout(title=f"Proxy vs retrained: {len(tested)} retrained trial(s); {ranks}",
                      xaxis={"title": "proxy: validation accuracy (search training)",
                             "tickformat": ".1%"},
                      yaxis={"title": "retrained: test accuracy", "tickformat": ".1%"},
                      title_font={"size": 14}, **_SIZE)
    return fig


def report_figures(results: StudyResults, paper: tuple[PaperPoint, ...],
                   op_latency: Mapping[str, Sequence[OpComparison]] | None = None,
                   ) -> dict[str, go.Figure]:
    """Every figure of the report, keyed by an id that is also its file name and its
    id in optuna-dashboard (saving under the same id again replaces it there).

    ``op_latency`` is, per target, :func:`cse_nets.latency.compare_ops` for the paper's mix
    model, when the study minimises latency."""
    latency = next((o for o in results.info.objectives if o.target), None)
    extra = {}
    if latency is not None:
        extra["front-latency"] = latency_front_figure(results, latency)
        if op_latency:
            extra["op-latency"] = op_latency_figure(op_latency, REFERENCE_OPS)
    if not retrained(results.trials).empty:
        extra[PROXY_FIGURE] = proxy_figure(results)
    return {
        "front": front_figure(results, paper),
        **extra,
        "hypervolume": hypervolume_figure(results),
        "cse-share": cse_share_figure(results),
        "parallel": parallel_figure(results),
    }
