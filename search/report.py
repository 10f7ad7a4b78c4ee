"""python -m search.report: a study's trials as a table, its front as figures.

    python -m search.report --study-name cifar10-tpe [--png]

Writes ``<results-dir>/<study>/``: ``trials.csv`` (one row per trial), ``report.html``
(one self-contained page, plotly inlined, works offline) and with ``--png`` one PNG per
figure. The figures and a note per trial (its architecture table) are also saved into the
study, where optuna-dashboard shows them; a short summary goes to the terminal.
"""

from __future__ import annotations

import contextlib
import html
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import kaleido
import optuna
import pandas as pd
import plotly.graph_objects as go
from kaleido.errors import KaleidoError
from optuna_dashboard import save_note, save_plotly_graph_object
from plotly.offline import get_plotlyjs

from cse_nets.cli import OneLineParser, exits_on_bad_input, first_line
from cse_nets.latency import INT8_TARGET, OpComparison, check_target, compare_ops
from search.cli import add_study_arguments, storage_url_from_args
from search.data.source import check_unchanged, folder_now
from search.reporting.figures import PROXY_FIGURE, REFERENCE_OPS, report_figures
from search.reporting.paper_points import paper_points
from search.reporting.trust import proxy_setting, trust_line
from search.study.objectives import ACCURACY, MACS, PARAMS
from search.study.results import StudyResults, load_results
from search.study.schema import (
    ARCH,
    EXPORT_DIR,
    FAIL_REASON,
    OVER_MAX_PARAMS,
    PARTIAL_ACCURACY,
    PRESET,
    PRUNED_EPOCH,
    TEST_ACCURACY,
)
from search.study.storage import open_study, output_dir, sqlite_read_only, writing_to_storage
from space import PRESETS, InputShape, stage_resolutions

__all__ = ["html_head", "main", "op_comparisons", "op_latency_lines", "summary_lines",
           "trial_note", "write_html"]

# kaleido's own default is 90 s a figure; a loaded 2-core machine running trials beside the
# report can take longer than that to start Chromium and render.
PNG_TIMEOUT_S = 300

_FRONT_COLUMNS = ["number", ARCH, PRESET, PARAMS.metric, MACS.metric, ACCURACY.metric,
                  TEST_ACCURACY, "hv_contribution"]


def summary_lines(results: StudyResults) -> list[str]:
    """Trial counts (pruned ones by epoch), scheduler, front size, hypervolume, per preset
    the best accuracy at or below its size, retrained trials and how well the proxy ranked
    them."""
    trials, complete = results.trials, results.complete
    states = ", ".join(f"{n} {s.lower()}" for s, n in trials["state"].value_counts().items())
    lines = [
        f"study {results.info.name} ({results.info.dataset}): {len(trials)} trials ({states})",
        *_scheduler_lines(results),
        f"front: {len(results.distinct_networks(results.front))} networks "
        f"({len(results.front)} trials); hypervolume {results.hypervolume:.4f} "
        f"(reference: {results.reference_text()})",
    ]
    costs = [(PARAMS.metric, "{:,.0f} params")] + [
        (o.metric, "{:,.3f} ms on " + str(o.target)) for o in results.info.objectives if o.target]
    for metric, unit in costs:
        for name, budget in results.presets[metric].items():
            lines.append(_best_within(complete, name, metric, budget, unit))
    tested = complete[complete[TEST_ACCURACY].notna()]
    lines.extend(f"trial {n} retrained: test acc {a:.2%} ({d})"
                 for n, a, d in zip(tested["number"], tested[TEST_ACCURACY],
                                    tested[EXPORT_DIR], strict=True))
    info = results.info
    lines.append(trust_line(trials, proxy_setting(info.dataset, info.train_config,
                                                  info.shape.input_size)))
    return lines


def _scheduler_lines(results: StudyResults) -> list[str]:
    """The scheduler as the study recorded it, and how many trials it stopped at each epoch
    (their accuracies are partial, so they are on neither the front nor the hypervolume)."""
    lines = []
    scheduler = results.info.scheduler
    if scheduler is not None:
        settings = ", ".join(f"{k} {v}" for k, v in scheduler.items() if k != "name")
        lines.append(f"scheduler: {scheduler.get('name', 'unnamed')}"
                     + (f" ({settings})" if settings else ""))
    pruned = results.pruned
    if len(pruned):
        by_epoch = pruned[PRUNED_EPOCH].value_counts(dropna=False).sort_index()
        lines.append(f"pruned: {len(pruned)} (" + ", ".join(
            f"{n} at epoch {e}" if pd.notna(e) else f"{n} at an unrecorded epoch"
            for e, n in by_epoch.items()) + "); not on the front nor in the hypervolume")
    oversized = results.oversized
    if len(oversized):
        caps = ", ".join(f"{cap:,}" for cap in sorted(oversized[OVER_MAX_PARAMS].unique()))
        lines.append(f"over --max-params ({caps}): {len(oversized)} proposal(s) not trained")
    return lines


def _best_within(complete: pd.DataFrame, name: str, metric: str, budget: float,
                 unit: str) -> str:
    """The best validation accuracy among trials that cost at most preset ``name``."""
    head = f"at or below {name} ({unit.format(budget)})"
    fits = complete[complete[metric] <= budget]
    if fits.empty:
        return f"{head}: no complete trial"
    accuracy = ACCURACY.metric
    best = fits.loc[fits[accuracy].idxmax()]
    itself = complete.loc[complete[PRESET] == name, accuracy]
    return (f"{head}: best val acc {best[accuracy]:.2%} (trial {best['number']}, "
            f"{unit.format(best[metric])})"
            + (f"; {name} itself {itself.max():.2%}" if len(itself) else ""))


def op_comparisons(shape: InputShape, target: str) -> dict[str, list[OpComparison]]:
    """Per target, :func:`compare_ops` for the reference model's stages: on the study's
    latency target and, where onnxruntime's quantiser is installed, on int8, which is
    what a deployment often runs (``search.export --int8``)."""
    targets = [target]
    if target != INT8_TARGET:
        with contextlib.suppress(ValueError):  # no quantiser here: the study's target alone
            targets.append(check_target(INT8_TARGET))
    return {t: compare_ops(PRESETS[REFERENCE_OPS], shape, t) for t in targets}


def op_latency_lines(comparisons: Mapping[str, Sequence[OpComparison]]) -> list[str]:
    """What the CSE-vs-BTN latency comparison shows per target, said plainly."""
    lines = []
    for target, rows in comparisons.items():
        faster = [r.part for r in rows if r.cse_saves_s > 0]
        ratios = ", ".join(f"{r.part} ({r.size}px) {r.cse_s / r.btn_s:.2f}x" for r in rows
                           if r.btn_s > 0)
        lines.append(f"{REFERENCE_OPS}'s stages as CSE vs as BTN blocks, CSE/BTN latency on "
                     f"{target}: {ratios}; "
                     + (f"CSE is faster only at {', '.join(faster)}" if faster
                        else "CSE is slower at every stage"))
    return lines


def trial_note(results: StudyResults, number: int) -> str:
    """Markdown for optuna-dashboard: the trial's stage table and its metrics."""
    row = results.trials.loc[number]
    status = row["state"].lower() + (", on the front" if row["on_front"] else "")
    lines = [f"### Trial {number} ({status})", ""]
    arch = results.archs.get(number)
    if arch is not None:
        sizes = stage_resolutions(arch, results.info.shape.input_size)
        lines += [f"`{arch}`", "", "| stage | op | t | c | n | s | r | cap | input px |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {i} | {s.op} | {s.t if s.op == 'btn' else '-'} | {s.c} | {s.n} | {s.s} "
                  f"| {s.r if s.op == 'cse' else '-'} | {s.cap if s.op == 'cse' else '-'} "
                  f"| {px[0]} |" for i, (s, px) in enumerate(zip(arch.stages, sizes,
                                                                    strict=True), start=1)]
        lines += ["", f"stem {arch.stem}, head {arch.head} ({arch.head_op}, {arch.act})", ""]
    facts = [("params", row[PARAMS.metric], "{:,.0f}"), ("MACs", row[MACS.metric], "{:,.0f}"),
             ("val accuracy", row[ACCURACY.metric], "{:.2%}"),
             ("test accuracy (retrained)", row[TEST_ACCURACY], "{:.2%}"),
             ("epochs trained", row["epochs"], "{}"),
             ("pruned at epoch", row[PRUNED_EPOCH], "{}"), ("rung", row["rung"], "{}"),
             ("partial val accuracy (at that epoch)", row[PARTIAL_ACCURACY], "{:.2%}"),
             ("export", row[EXPORT_DIR], "{}"), ("preset", row[PRESET], "{}"),
             ("fail reason", row[FAIL_REASON], "{}")]
    lines += [f"- {key}: {fmt.format(value)}" for key, value, fmt in facts
              if pd.notna(value) and value != ""]
    return "\n".join(lines)


def html_head(title: str) -> list[str]:
    """The start of a self-contained page, up to ``<body>``: plotly's JavaScript inlined
    once, so figures added with ``include_plotlyjs=False`` work offline."""
    return [
        "<!doctype html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<script>{get_plotlyjs()}</script>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:left}pre{background:#f6f6f6;"
        "padding:1em;white-space:pre-wrap}</style></head><body>",
    ]


def write_html(path: Path, results: StudyResults, figures: dict[str, go.Figure],
               lines: list[str]) -> None:
    """One page, plotly's JavaScript inlined once, so it opens offline and can be mailed."""
    info = results.info
    paper = paper_points(info.dataset)
    source = html.escape(paper[0].dataset)
    paper_text = (f"Red diamonds: the paper's reported <b>test</b> accuracies for {source} "
                  f"(best epoch, chosen on the test set)."
                  if paper[0].dataset == info.dataset else
                  f"The paper reports no results for {html.escape(info.dataset)}; open red "
                  f"diamonds are its <b>test</b> accuracies on {source}, another dataset, "
                  f"drawn for scale.")
    columns = _FRONT_COLUMNS + [m for m in info.metric_names if m not in _FRONT_COLUMNS]
    front = results.front.sort_values(PARAMS.metric)[columns]
    parts = [
        *html_head(f"{info.name}: search report"),
        f"<h1>Study {html.escape(info.name)}</h1>",
        f"<p>dataset {html.escape(info.dataset)}, input "
        f"{'x'.join(map(str, info.shape.chw))}, {info.shape.num_classes} classes; "
        f"objectives {', '.join(f'{o.metric} ({o.ray_mode})' for o in info.objectives)}. "
        "Accuracies on the axes are validation accuracies; "
        "stars are test accuracies of retrained exports.</p>",
        f"<pre>{html.escape(chr(10).join(lines))}</pre>",
        f"<p>{paper_text}</p>",
    ]
    for key, fig in figures.items():
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=key))
        if key == "front":
            parts += ["<h2>The front</h2>", front.to_html(index=False, na_rep="", escape=True,
                                                          float_format="{:.4f}".format)]
    if PROXY_FIGURE not in figures:
        parts.append("<p>No trial has been retrained yet, so the proxy ranking is not checked "
                     "against test accuracy (python -m search.export --retrain-epochs E).</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _write_pngs(out: Path, figures: dict[str, go.Figure]) -> list[Path]:
    paths = [out / f"{key}.png" for key in figures]
    specs = [{"fig": fig, "path": path,
              "opts": {"format": "png", "width": fig.layout.width, "height": fig.layout.height}}
             for fig, path in zip(figures.values(), paths, strict=True)]
    try:
        # Through kaleido itself, not plotly's write_images: that one drops kaleido's
        # per-figure errors, so a render that failed passed for a written file. MathJax is
        # off because the figures use no TeX and kaleido would fetch it from a CDN.
        kaleido.write_fig_from_object_sync(specs, kopts={"mathjax": False,
                                                         "timeout": PNG_TIMEOUT_S},
                                           cancel_on_error=True)
    except TimeoutError:
        raise ValueError(f"PNG export failed: a figure took over {PNG_TIMEOUT_S} s to "
                         "render") from None
    except (RuntimeError, KaleidoError, OSError) as err:
        # RuntimeError covers the browser's: not found, failed to start, closed.
        raise ValueError(f"PNG export failed (kaleido needs Chrome or Chromium; on Debian "
                         f"apt-get install chromium): {type(err).__name__}: "
                         f"{first_line(err)}") from None
    return paths


def _attach(study: optuna.Study, storage: optuna.storages.BaseStorage, results: StudyResults,
            figures: dict[str, go.Figure], lines: list[str]) -> None:
    for key, fig in figures.items():
        save_plotly_graph_object(study, fig, graph_object_id=key)
    save_note(study, "\n".join(["## Search report", "", *[f"- {line}" for line in lines]]))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False):
        # save_note takes a live Trial; a finished one is opened by its storage id just to
        # name it.
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        save_note(optuna.trial.Trial(study, trial_id), trial_note(results, trial.number))


@exits_on_bad_input
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.report", description=__doc__.splitlines()[0])
    add_study_arguments(parser)
    parser.add_argument("--png", action="store_true", help="also write PNGs (needs Chrome)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="do not save figures and notes into the study")
    args = parser.parse_args(argv)

    storage_url = storage_url_from_args(args)
    study = open_study(args.study, storage_url)
    results = load_results(study)
    info = results.info
    # The report shows test accuracies measured on the folder as it was: a changed folder
    # is refused here as search.run and search.export refuse it.
    check_unchanged(info.data_source, folder_now(info.dataset), info.name)
    out = output_dir(args.results_dir, args.study)
    results.trials.to_csv(out / "trials.csv", index=False)
    latency = next((o for o in results.info.objectives if o.target), None)
    op_latency = (op_comparisons(results.info.shape, latency.target)
                  if latency is not None else {})
    figures = report_figures(results, paper_points(results.info.dataset), op_latency)
    lines = summary_lines(results) + op_latency_lines(op_latency)
    write_html(out / "report.html", results, figures, lines)
    written = [out / "trials.csv", out / "report.html"]
    if args.png:
        written += _write_pngs(out, figures)
    if sqlite_read_only(storage_url_from_args(args)):
        lines.append("figures and notes not saved into the study: its database is read-only")
    elif not args.no_dashboard:
        with writing_to_storage("figures and notes (--no-dashboard skips them)"):
            _attach(study, optuna.storages.get_storage(storage_url), results, figures, lines)
    print("\n".join(lines))
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
