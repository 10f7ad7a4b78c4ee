"""The search-quality benchmark's plotly figures: hypervolume bands per sampler, the final
fronts overlaid, and where the fronts put CSE blocks (the paper's rule)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search.study.objectives import ACCURACY, PARAMS
from search.study.results import StudyResults
from search.study.schema import ARCH

__all__ = ["cse_rule_figure", "fronts_figure", "hypervolume_band_figure",
           "sampler_colours"]

_SIZE = {"width": 1000, "height": 560}
_GREY = "#b0b0b0"
_FRONT = "#d62728"
Runs = Mapping[tuple[str, int], StudyResults]  # (sampler, seed) -> the search's results


def sampler_colours(samplers: list[str]) -> dict[str, str]:
    return {s: qualitative.D3[i % len(qualitative.D3)] for i, s in enumerate(samplers)}


def _translucent(colour: str) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.15)"


def hypervolume_band_figure(band: pd.DataFrame, x: str, x_title: str, title: str,
                            colours: dict[str, str]) -> go.Figure:
    """One line per sampler (the mean over seeds) in a min-max band."""
    fig = go.Figure()
    for sampler, colour in colours.items():
        rows = band[band["sampler"] == sampler]
        # The band: an invisible max line, then the min line filled up to it.
        for edge, fill in (("max", None), ("min", "tonexty")):
            fig.add_scatter(x=rows[x], y=rows[edge], mode="lines", fill=fill,
                            fillcolor=_translucent(colour), line={"width": 0, "shape": "hv"},
                            hoverinfo="skip", showlegend=False, legendgroup=sampler)
        fig.add_scatter(x=rows[x], y=rows["mean"], mode="lines", name=sampler,
                        line={"color": colour, "shape": "hv"}, legendgroup=sampler)
    fig.update_layout(title=title, xaxis={"title": x_title},
                      yaxis={"title": "hypervolume (mean, band: min-max over seeds)"},
                      title_font={"size": 14}, **_SIZE)
    return fig


def fronts_figure(runs: Runs, colours: dict[str, str]) -> go.Figure:
    """Every search's final front as a staircase, coloured by sampler."""
    fig = go.Figure()
    for (sampler, seed), results in runs.items():
        front = results.front.sort_values(PARAMS.metric)
        fig.add_scatter(x=front[PARAMS.metric], y=front[ACCURACY.metric], mode="lines+markers",
                        line={"shape": "hv", "color": colours[sampler], "width": 1.5},
                        marker={"size": 6}, name=sampler, legendgroup=sampler,
                        showlegend=seed == min(s for n, s in runs if n == sampler),
                        hovertext=[f"{sampler} seed {seed}, trial {n}<br>{arch}"
                                   for n, arch in zip(front["number"], front[ARCH],
                                                      strict=True)],
                        hoverinfo="text+x+y")
    fig.update_layout(title="Final Pareto fronts, one staircase per search (seed)",
                      xaxis={"title": "trainable parameters", "type": "log", "dtick": "D2",
                             "tickformat": "~s"},
                      yaxis={"title": "validation accuracy", "tickformat": ".1%"}, **_SIZE)
    return fig


def cse_rule_figure(rule: pd.DataFrame, searches: str) -> go.Figure:
    """Per stage, the mean share of CSE blocks on the searches' final fronts and among their
    dominated trials (:func:`search.reporting.paper_rule.cse_rule`), with 95% bootstrap
    intervals over searches: does the search find the paper's rule, BTN early and CSE
    late?"""
    fig = go.Figure()
    for name, label, colour in (("front", "final fronts", _FRONT),
                                ("dominated", "dominated trials", _GREY)):
        fig.add_bar(x=rule["stage"], y=rule[name], name=label, marker_color=colour,
                    error_y={"type": "data", "symmetric": False,
                             "array": rule[f"{name}_high"] - rule[name],
                             "arrayminus": rule[name] - rule[f"{name}_low"]},
                    hovertext=[f"{p} preferred" if p != "-" else "no clear preference"
                               for p in rule["preferred"]])
    fig.update_layout(title=f"Share of CSE blocks per stage, mean over {searches} (bars: 95% "
                            "bootstrap interval over searches; the rest are BTN blocks)",
                      barmode="group", yaxis={"title": "share of architectures",
                                              "tickformat": ".0%", "range": [0, 1]},
                      title_font={"size": 14}, **_SIZE)
    return fig
