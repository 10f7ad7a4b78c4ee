"""The search-quality benchmark's plotly figures: hypervolume bands per sampler, the final
fronts overlaid, and where the fronts put CSE blocks."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search.reporting.figures import cse_flags
from search.study.objectives import ACCURACY, PARAMS
from search.study.results import StudyResults
from search.study.schema import ARCH

__all__ = ["cse_share_by_sampler_figure", "fronts_figure", "hypervolume_band_figure",
           "sampler_colours"]

_SIZE = {"width": 1000, "height": 560}
_GREY = "#b0b0b0"
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


def cse_share_by_sampler_figure(runs: Runs, colours: dict[str, str]) -> go.Figure:
    """Per stage, the share of CSE blocks on each sampler's final fronts (pooled over its
    seeds) and among the dominated trials of all searches: does the search find the
    paper's rule, BTN early and CSE late?"""
    fronts: dict[str, list[pd.DataFrame]] = {s: [] for s in colours}
    dominated: list[pd.DataFrame] = []
    for (sampler, _), results in runs.items():
        complete = results.complete
        fronts[sampler].append(cse_flags(complete[complete["on_front"]], results.stages))
        dominated.append(cse_flags(complete[~complete["on_front"]], results.stages))
    fig = go.Figure()
    for label, flags, colour in ((f"{s} front", fronts[s], colours[s]) for s in colours):
        share = pd.concat(flags).mean()
        fig.add_bar(x=share.index, y=share.values, name=f"{label} ({sum(map(len, flags))})",
                    marker_color=colour)
    share = pd.concat(dominated).mean()
    fig.add_bar(x=share.index, y=share.values, marker_color=_GREY,
                name=f"dominated, all searches ({sum(map(len, dominated))})")
    fig.update_layout(title="Share of CSE blocks per stage on the final fronts (trials in "
                            "brackets; the rest are BTN blocks)",
                      barmode="group", yaxis={"title": "share of trials", "tickformat": ".0%",
                                              "range": [0, 1]}, title_font={"size": 14},
                      **_SIZE)
    return fig
