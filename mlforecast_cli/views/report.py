"""One self-contained HTML page for an MLflow experiment: the leaderboard and each model's plots.

The plots are the PNG files `mlf optimize` logged under ``plots/`` on each study's parent run;
they are inlined as base64 ``data:`` URLs, so the page needs no other file, no network and no
script.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..search.metrics import check_metric
from ..tracking.leaderboard import TRIALS_LEGEND, is_reference, model_label, ranking_note
from ..trials.reference import REFERENCE_HEADER
from .plots import INDEX, ORDER, TITLES


@dataclass(frozen=True)
class EnsembleInfo:
    """How an ensemble's run combined its members (from the run's parameters)."""

    weights: dict[str, float]
    """Member model → weight, as `mlf ensemble` chose them on validation."""
    method: str = ""
    windows: int | None = None
    """How many rolling windows the weights were chosen on."""


@dataclass
class StudySection:
    """One model's best study: its leaderboard row, best parameters and plots (an ensemble's:
    its members' weights)."""

    row: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)
    """Plot file name → PNG bytes, in :data:`mlforecast_cli.views.plots.ORDER`."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Plot file name → why it is not there."""
    ensemble: EnsembleInfo | None = None


@dataclass
class ReportData:
    experiment: str
    metric: str
    tracking_uri: str
    sections: list[StudySection]
    created: str = field(
        default_factory=lambda: dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    )


def collect(experiment: str, metric: str, tracking_uri: str | None) -> ReportData:
    """Read the leaderboard of ``experiment`` (ranked by validation) and download each best
    study's plots."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from ..forecasting.pyfunc import quiet_mlflow
    from ..tracking.leaderboard import leaderboard_rows
    from ..tracking.study_runs import read_study_runs

    check_metric(metric)
    uri = tracking_uri or mlflow.get_tracking_uri()
    records = read_study_runs(uri, experiment)
    rows = leaderboard_rows(records, metric, reference=True)
    by_id = {r.run_id: r for r in records}
    client = MlflowClient(uri)
    sections = []
    with quiet_mlflow():
        for row in rows:
            if row.get("run_id") is None:  # the reference, scored by the studies, not searched
                sections.append(StudySection(row=row))
                continue
            record = by_id[row["run_id"]]
            section = StudySection(
                row=row, params=dict(record.best_params), ensemble=_ensemble(record.params)
            )
            _plots(client, row["run_id"], section)
            sections.append(section)
    return ReportData(experiment, metric, uri, sections)


def _ensemble(params: Mapping[str, str]) -> EnsembleInfo | None:
    """The weights of an ensemble's run (`mlf ensemble` logs them as the ``members``
    parameter); None for a study's run."""
    text = params.get("members")
    if text is None:
        return None
    try:
        weights = json.loads(text)
    except ValueError:
        weights = {}
    windows = params.get("ensemble_windows")
    return EnsembleInfo(
        weights={str(k): float(v) for k, v in weights.items()} if isinstance(weights, dict) else {},
        method=params.get("method", ""),
        windows=int(windows) if windows and windows.isdigit() else None,
    )


def _plots(client, run_id: str, section: StudySection) -> None:
    names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run_id, "plots")}
    if not names:
        if section.ensemble is None:  # an ensemble runs no search: it has none to log
            section.skipped = dict.fromkeys(ORDER, "the study logged no plots (an older mlf?)")
        return
    with tempfile.TemporaryDirectory(prefix="mlf-report-") as tmp:
        local = Path(client.download_artifacts(run_id, "plots", tmp))
        index = local / INDEX
        if index.is_file():
            with contextlib.suppress(ValueError):
                section.skipped = dict(json.loads(index.read_text()).get("skipped") or {})
        for name in ORDER:
            path = local / name
            if path.is_file():
                section.images[name] = path.read_bytes()
                section.skipped.pop(name, None)
            else:
                section.skipped.setdefault(name, "not logged")


# --------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 36px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.0em; margin: 18px 0 6px; color: #444; }
.meta { color: #666; font-size: 0.9em; margin-bottom: 20px; }
table { border-collapse: collapse; background: white; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 5px 10px; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { overflow-wrap: anywhere; }
.wide { max-width: 100%; overflow-x: auto; }
.note { color: #666; font-size: 0.85em; margin: 4px 0 0; }
tr.reference td { color: #666; font-style: italic; }
figure { margin: 8px 0 20px; background: white; border: 1px solid #e4e4e4; padding: 8px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.85em; margin-top: 4px; }
.skipped { color: #777; font-size: 0.9em; }
code { background: #f0f0f0; padding: 1px 4px; border-radius: 3px; }
"""


def render(data: ReportData) -> str:
    """The HTML page of ``data`` (a string; every value is escaped)."""
    from ..search.metrics import metric_label
    from ..services.storage import redact

    label = metric_label(data.metric)
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>mlf report: {e(data.experiment)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>mlf report: {e(data.experiment)}</h1>",
        f'<p class="meta">MLflow tracking store <code>{e(redact(data.tracking_uri))}</code>; '
        f"each model's best study, {e(ranking_note(data.metric))}; made {e(data.created)}.</p>",
        "<h2>Leaderboard</h2>",
    ]
    if data.sections:
        parts.append(_leaderboard(data, label))
        parts.append(_test_metrics(data, label))
    else:
        parts.append(
            f'<p class="skipped">No study with a validation {e(label)} in this experiment '
            "yet: run <code>mlf optimize</code>.</p>"
        )
    for section in data.sections:
        if section.row.get("run_id") is not None:
            parts.append(_section(section, label))
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _leaderboard(data: ReportData, label: str) -> str:
    """The ranked table: the columns a reader compares, each model linked to its section."""
    e = html.escape
    head = ["rank", "model", f"best val {label}", f"test {label}", REFERENCE_HEADER, "trials"]
    head.append("study")
    rows = [_table_head(head), "<tbody>"]
    for s in data.sections:
        r = s.row
        ratio = r.get("vs_reference")
        cells = [
            f'<td class="num">{r.get("rank", "")}</td>',
            f"<td>{_model_cell(r)}</td>",
            _num(r.get("val")),
            _num(r.get("test")),
            _num(None if ratio is None else f"{ratio:.2f}"),
            f"<td>{_fmt(_trials(s))}</td>",
            f'<td class="name">{_fmt(r.get("study"))}</td>',
        ]
        cls = ' class="reference"' if is_reference(r["model"]) else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    note = (
        f'<p class="note">trials: {e(TRIALS_LEGEND)}; an ensemble runs none, its weights are '
        "in its section. The reference row without a study is the seasonal naive scored on "
        "the top study's split.</p>"
    )
    return "\n".join(rows) + "\n" + note


def _test_metrics(data: ReportData, label: str) -> str:
    """Every test metric but the ranked one (``label``) of each model that logged them
    (intervals' coverage and MSIS among them), or ''."""
    names = sorted(
        {k for s in data.sections for k in s.row.get("test_metrics", {})} - {label},
        key=lambda k: k.lower(),
    )
    if not names:
        return ""
    rows = [
        "<h3>Every test metric</h3>",
        _table_head(["model", *(f"test {k.replace('_', ' ')}" for k in names)]),
        "<tbody>",
    ]
    for s in data.sections:
        metrics = s.row.get("test_metrics") or {}
        if not metrics:  # the reference scored by the studies keeps only the ranked metric
            continue
        cells = [f"<td>{_model_cell(s.row)}</td>", *(_num(metrics.get(k)) for k in names)]
        cls = ' class="reference"' if is_reference(s.row["model"]) else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    return "\n".join(rows)


def _table_head(head: list[str]) -> str:
    e = html.escape
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    return f'<div class="wide"><table><thead><tr>{cells}</tr></thead>'


def _model_cell(row: dict[str, Any]) -> str:
    model = html.escape(model_label(row["model"]))
    if row.get("run_id") is None:  # the reference scored by the studies: no section
        return model
    return f'<a href="#{_anchor(row)}">{model}</a>'


def _trials(section: StudySection) -> str:
    """The trials cell: the counts, or what an ensemble combines."""
    if section.ensemble is not None:
        method = f", {section.ensemble.method}" if section.ensemble.method else ""
        return f"ensemble of {len(section.ensemble.weights)}{method}"
    return str(section.row.get("trials") or "")


def _section(section: StudySection, label: str) -> str:
    e = html.escape
    r = section.row
    parts = [
        f'<h2 id="{_anchor(r)}">{r.get("rank", "")}. {e(r["model"])}: study '
        f"{e(str(r.get('study', '')))}</h2>",
        f'<p class="meta">best validation {e(label)} {_fmt(r.get("val"))}, test {e(label)} '
        f"{_fmt(r.get('test'))}; {'' if section.ensemble else 'trials '}"
        f"{_fmt(_trials(section))}; MLflow run <code>{_fmt(r.get('run_id'))}</code></p>",
    ]
    if section.ensemble is not None:
        parts.append(_weights(section.ensemble))
    if section.params:
        cells = "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(_param(v))}</td></tr>"
            for k, v in sorted(section.params.items())
        )
        parts.append(
            "<details><summary>best parameters</summary>"
            f"<table><thead><tr><th>parameter</th><th>value</th></tr></thead>"
            f"<tbody>{cells}</tbody></table></details>"
        )
    if section.ensemble is not None and not section.images:
        parts.append(
            '<p class="skipped">An ensemble runs no search, so it has no search plots; '
            "its members' sections show theirs.</p>"
        )
        return "\n".join(parts)
    for name in ORDER:
        title = TITLES[name]
        if name in section.images:
            data = base64.b64encode(section.images[name]).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{e(title)}">'
                f"<figcaption>{e(title)}</figcaption></figure>"
            )
        else:
            reason = section.skipped.get(name, "not logged")
            parts.append(f'<p class="skipped">{e(title)}: not available ({e(reason)}).</p>')
    return "\n".join(parts)


def _weights(ensemble: EnsembleInfo) -> str:
    """An ensemble's members and their weights, heaviest first, each linked to its section."""
    e = html.escape
    on = f" on {ensemble.windows} validation windows" if ensemble.windows else " on validation"
    rows = "".join(
        f'<tr><td><a href="#{_anchor({"model": model})}">{e(model)}</a></td>'
        f'<td class="num">{weight:.3f}</td></tr>'
        for model, weight in sorted(ensemble.weights.items(), key=lambda kv: -kv[1])
    )
    if not rows:
        return '<p class="skipped">Weights: not available (the run logged none).</p>'
    method = f" ({e(ensemble.method)})" if ensemble.method else ""
    return (
        f"<h3>Weights{method}, chosen{e(on)}</h3>"
        "<table><thead><tr><th>member</th><th>weight</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _anchor(row: dict[str, Any]) -> str:
    return "model-" + "".join(c if c.isalnum() else "-" for c in str(row["model"]))


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _num(value: Any) -> str:
    return f'<td class="num">{_fmt(value)}</td>'


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename (no half file)."""
    from ..services.files import atomic_write

    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
