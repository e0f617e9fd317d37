"""The evaluation report: one self-contained HTML page (plots embedded as base64 PNG).

The page shows the blessing verdict and its reasons, a table of every model's metrics, the
teacher-student agreement, the per-session consistency with the teacher's ranking, ROC curves
of all models on one plot, a calibration (reliability) plot and the score distributions of
teacher and student. It works offline and as a KFP ``HTML`` artifact, since nothing is linked.
Plots use matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend
switch).

This module renders what evaluation computed; it imports only ``recdistill.metrics``.
"""

import base64
import html
import io
import logging
from typing import Mapping

import numpy as np

from recdistill import metrics

logger = logging.getLogger(__name__)

#: Columns of the metrics table, in order, with their headers.
TABLE_COLUMNS = (("auc", "AUC"), ("gauc", "GAUC"), ("logloss", "logloss"),
                 ("calibration", "calibration"), ("mean_prediction", "mean prediction"),
                 ("positive_rate", "positive rate"), ("examples", "examples"),
                 ("teacher_topk_recall", "teacher top-k recall"),
                 ("teacher_ndcg", "NDCG@k vs teacher"))
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.blessed { color: #1a7f37; } .not-blessed { color: #b42318; }
img { max-width: 48%; margin: 0.5%; border: 1px solid #eee; }
"""


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.5), dpi=100)
    return figure, figure.add_subplot()


def _png(figure) -> str:
    """An ``<img>`` tag holding ``figure`` as a base64 PNG."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def roc_plot(labels, probs_by_model: Mapping, auc_by_model: Mapping) -> str:
    """ROC curves of every model on one plot, its AUC (as evaluation computed it) in the legend."""
    figure, ax = _figure()
    for name, probs in probs_by_model.items():
        roc = metrics.roc_points(labels, probs)
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {auc_by_model[name]:.4f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    return _png(figure)


def calibration_plot(labels, probs_by_model: Mapping) -> str:
    """Reliability diagram: observed positive rate per predicted-probability bin."""
    figure, ax = _figure()
    for name, probs in probs_by_model.items():
        curve = metrics.calibration_curve(labels, probs)
        ax.plot(curve["mean_predicted"], curve["fraction_positive"], marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="fraction of positives",
           title="Calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return _png(figure)


def distribution_plot(probs_by_model: Mapping) -> str:
    """Histograms (densities) of predicted probabilities, one per model, overlaid."""
    figure, ax = _figure()
    bins = np.linspace(0.0, 1.0, 41)
    for name, probs in probs_by_model.items():
        ax.hist(np.asarray(probs), bins=bins, density=True, histtype="step", linewidth=1.5,
                label=name)
    ax.set(xlabel="predicted probability", ylabel="density", title="Score distributions")
    ax.legend(loc="upper right")
    return _png(figure)


def _cell(value) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(header: list, rows: list) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(title: str, content: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{content}\n"


def render_report(labels, probs_by_model: Mapping, result: Mapping) -> str:
    """Renders the report page.

    Args:
      labels: the eval table's 0/1 labels.
      probs_by_model: role (``student``, ``teacher``, ``champion``, ``baseline``) -> predicted
        probabilities, aligned with ``labels``.
      result: the metrics.json content (``models``, ``teacher_student``,
        ``teacher_consistency``, ``kd_gain``, ``blessing``, ``label_field``, ``examples``).

    Returns:
      The HTML page as a string.
    """
    blessing = result["blessing"]
    verdict = "blessed" if blessing["blessed"] else "not blessed"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in blessing["reasons"])
    parts = [f'<h2 class="{verdict.replace(" ", "-")}">Verdict: {verdict}</h2><ul>{reasons}</ul>']
    if blessing["checks"]:
        parts.append(_table(["check", "threshold", "observed", "status"],
                            [[c["name"], c["threshold"], c["observed"], c["status"]]
                             for c in blessing["checks"]]))
    rows = [[name] + [m.get(key) for key, _ in TABLE_COLUMNS]
            for name, m in result["models"].items()]
    parts.append(_section("Metrics", _table(["model"] + [h for _, h in TABLE_COLUMNS], rows)))
    agreement = result.get("teacher_student")
    if agreement:
        overlap = agreement["topk_overlap"]
        parts.append(_section("Student vs teacher", _table(
            ["Spearman", "Kendall", "Spearman per user", "Kendall per user",
             f"top-{overlap['k']} overlap per user"],
            [[agreement["spearman"], agreement["kendall"], agreement["spearman_per_user"],
              agreement["kendall_per_user"], overlap["mean"]]])))
    consistency = result.get("teacher_consistency")
    if consistency:
        parts.append(_section(
            f"Consistency with the teacher's ranking, per {consistency['session_field']}",
            _table([f"teacher top-{consistency['k']} recall in student top-{consistency['m']}",
                    "sessions", f"NDCG@{consistency['k']} (teacher scores as gains)",
                    "sessions"],
                   [[consistency["recall"], consistency["recall_sessions"],
                     consistency["ndcg"], consistency["ndcg_sessions"]]])))
    if result.get("selection"):
        parts.append(selection_section(result["selection"]))
    if result.get("kd_gain"):
        gain = result["kd_gain"]
        parts.append(_section("Gain over the baseline (student without kd)", _table(
            ["AUC gain", "GAUC gain", "logloss reduction"],
            [[gain["auc"], gain["gauc"], gain["logloss_reduction"]]])))
    distributions = {k: probs_by_model[k] for k in ("student", "teacher") if k in probs_by_model}
    aucs = {name: m["auc"] for name, m in result["models"].items()}
    parts.append(_section("Plots", roc_plot(labels, probs_by_model, aucs)
                          + calibration_plot(labels, probs_by_model)
                          + distribution_plot(distributions)))
    title = (f"recdistill evaluation: {result['examples']} rows, label "
             f"{html.escape(str(result['label_field']))}")
    logger.info("rendered the report for %s", ", ".join(probs_by_model))
    return _page(title, parts)


#: The kd sweep's candidate trained without kd (``recdistill.selection.BASELINE``).
_BASELINE = "baseline"


def _candidate_order(selection: Mapping) -> list:
    """The kd candidates in their order (selection.json's keys are sorted), the baseline last."""
    return sorted(selection["candidates"], key=lambda n: (n == _BASELINE, len(n), n))


def selection_plot(selection: Mapping) -> str:
    """One bar per candidate of the kd sweep: its validation metric, the chosen one green."""
    metric = selection["metric"]
    names = _candidate_order(selection)
    values = [selection["candidates"][n][metric] for n in names]
    figure, ax = _figure()
    ax.bar(names, values, color=["#1a7f37" if n == selection["chosen"] else "#8c959f"
                                 for n in names])
    low = min(values)
    ax.set_ylim(low - 0.1 * (max(values) - low + 1e-3), None)
    ax.set(ylabel=f"validation {metric.upper()}", title="kd sweep: candidates on validation")
    ax.tick_params(axis="x", labelrotation=30)
    return _png(figure)


def selection_section(selection: Mapping) -> str:
    """The kd sweep: every candidate's overrides and validation metrics, and which was chosen
    (``recdistill.selection`` writes ``selection``, the content of selection.json)."""
    candidates = selection["candidates"]
    rows = [[name, "yes" if name == selection["chosen"] else "",
             ", ".join(f"{k}={v}" for k, v in (c.get("overrides") or {}).items())
             or ("without kd" if name == _BASELINE else "as configured"),
             c.get("auc"), c.get("gauc"), c.get("logloss"), c.get("examples")]
            for name, c in ((n, candidates[n]) for n in _candidate_order(selection))]
    content = (f"<p>{html.escape(selection['reason'])}</p>"
               + _table(["candidate", "chosen", "overrides", "AUC", "GAUC", "logloss",
                         "examples"], rows))
    if all(c.get(selection["metric"]) is not None for c in candidates.values()):
        content += selection_plot(selection)
    return _section("kd sweep: candidates on the validation split", content)


def render_selection_report(selection: Mapping) -> str:
    """The selection page of ``select_candidate``: :func:`selection_section` on its own."""
    return _page("recdistill kd sweep", [selection_section(selection)])


def _page(title: str, parts: list) -> str:
    """A self-contained HTML page with ``title`` and the rendered ``parts``."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>\n" + "\n".join(parts)
            + "</body></html>\n")


def curves_plot(series: Mapping, *, title: str, ylabel: str) -> str:
    """One line per named ``{step: value}`` series, against the training step."""
    figure, ax = _figure()
    for name, points in series.items():
        steps = sorted(points)
        ax.plot(steps, [points[step] for step in steps], label=name)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend(loc="best", fontsize="small")
    return _png(figure)


def render_training_report(scalars: Mapping, *, title: str) -> str:
    """The training report: loss curves (each component: hard losses, every kd loss,
    regularisation, total) and throughput, from the scalars training logged.

    Args:
      scalars: tag -> {step: value}, as ``recdistill.training.read_scalars`` returns them
        (tags ``loss/<component>``, ``examples_per_sec``, ``steps_per_sec``).
      title: the page title (e.g. the model class and model_dir).
    """
    losses = {tag.split("/", 1)[1]: points for tag, points in sorted(scalars.items())
              if tag.startswith("loss/")}
    parts = [_section("Loss components", curves_plot(losses, title="Training loss",
                                                      ylabel="mean over the logging window"))]
    if "examples_per_sec" in scalars:
        parts.append(_section("Throughput", curves_plot(
            {"examples/s": scalars["examples_per_sec"]}, title="Throughput",
            ylabel="examples per second")))
    last = max((max(points) for points in losses.values()), default=None)
    if last is not None:
        parts.append(_section(f"Final values (step {last})", _table(
            ["component", "value"], [[name, points[max(points)]]
                                     for name, points in losses.items()])))
    return _page(html.escape(title), parts)
