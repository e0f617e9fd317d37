"""Quality benchmark: does knowledge distillation lift the DSSM student, and by how much?

For every seed, on a fixed dataset (the synthetic sample or MovieLens-100K):

1. four teachers are trained with ``recdistill.training.train``: the DCN of ``teacher.config``
   (every feature: the student's, the ranking ones and the privileged ones), a GBDT (the same
   config with ``gbdt {}`` in place of the ``dcn`` block), and both again without the
   privileged features (ranking features only: what a fine-ranking model knows at serving
   time). Their leads over the student differ in kind: a ranking feature says something about
   (user, item) that the student can learn, a privileged one about the moment, which it cannot;
2. each teacher labels the training table with the real soft-label job
   (``recdistill.soft_labels.job.generate_soft_labels``, Beam DirectRunner);
3. the DSSM student is trained without kd (``student.config`` minus its kd block) and with each
   kd setting (the loaded ``student.config`` with its kd block edited: CE at T = 1, 2, 4, KL,
   L2 from the DCN teacher, and CE from each of the other teachers);
4. every student is evaluated on the held-out ``eval.csv`` with ``recdistill.evaluation``
   (AUC, GAUC by user_id, logloss), beside its teacher and the no-kd baseline.

That is the ``pointwise`` suite (``--suite pointwise``, the default). The ``ranking`` suite
trains the shipped pointwise CE block beside a pairwise or listwise kd block within each
user's rows (PAIRWISE_LOGISTIC, PAIRWISE_HINGE, LISTWISE_DISTILL, recdistill's CLID; see
``quality_ranking.py``) and adds the evaluation's per-session consistency with the teacher
(its top-k recall within the student's top m, NDCG@k); ``ranking-alone`` trains each ranking
block without the pointwise one. Each suite writes its own results file.

Seeds set TF/Keras/numpy randomness per training run (``keras.utils.set_random_seed``), which
also seeds the training-data shuffle; the dataset itself stays the same. The table reports
mean ± std over seeds, the kd gain (student + kd − student, AUC) and the share of the
teacher–student AUC gap recovered, ``(kd − no kd) / (teacher − no kd)`` (from the means).
Results go to ``bench/results/quality-<data>.md`` with a PNG plot of AUC per setting.

Usage::

    .venv/bin/python bench/quality.py --data sample --seeds 3
    .venv/bin/python bench/quality.py --data movielens --seeds 3 [--out bench/results]
    .venv/bin/python bench/quality.py --data sample --suite ranking --seeds 3

Not run by pytest.
"""

import argparse
import collections
import dataclasses
import logging
import os
import platform
import shlex
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import quality_ranking  # noqa: E402  (bench/, on sys.path when run as a script)
from recdistill import config as config_lib  # noqa: E402
from recdistill.protos import pipeline_pb2  # noqa: E402

MOVIELENS_DIR = os.path.join(REPO, "..", "shared", "data", "ml-100k")
DCN, GBDT = "DCN", "GBDT"
#: Suffix of a teacher trained without the privileged features (ranking features only).
RANKING_ONLY = ", no privileged"
NO_KD = "DSSM no kd"
#: Fields of the kd block the table shows for each setting.
KD_FIELDS = ("loss_type", "temperature", "loss_weight", "scale_by_temperature_squared")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One distilled student: which teacher, and what to change in student.config's kd block.

    Fields not named in ``kd`` keep the value student.config gives them (the shipped
    defaults), so the bench measures those defaults and one change at a time. ``ranking``
    adds a pairwise or listwise kd block within each session; ``pointwise=False`` drops the
    shipped pointwise block, leaving the ranking one alone.
    """

    name: str
    teacher: str = DCN
    kd: tuple = ()  # (field, value) pairs set on model_config.kd[0]
    ranking: quality_ranking.RankingKd | None = None
    pointwise: bool = True

    def apply(self, student_cfg):
        """A copy of ``student_cfg`` with this setting's kd blocks."""
        cfg = pipeline_pb2.EasyRecConfig()
        cfg.CopyFrom(student_cfg)
        block = cfg.model_config.kd[0]
        for field, value in self.kd:
            setattr(block, field, value)
        if self.ranking is not None:
            self.ranking.add_to(cfg, alone=not self.pointwise)
        return cfg


POINTWISE_SETTINGS = (
    Setting("CE T=1", kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS), ("temperature", 1.0))),
    Setting("CE T=2", kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS), ("temperature", 2.0))),
    Setting("CE T=4", kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS), ("temperature", 4.0))),
    Setting("KL", kd=(("loss_type", pipeline_pb2.KL_DIVERGENCE_LOSS),)),
    Setting("L2", kd=(("loss_type", pipeline_pb2.L2_LOSS),)),
    Setting("DCN no privileged, CE", teacher=DCN + RANKING_ONLY,
            kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS),)),
    Setting("GBDT teacher, CE", teacher=GBDT,
            kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS),)),
    Setting("GBDT no privileged, CE", teacher=GBDT + RANKING_ONLY,
            kd=(("loss_type", pipeline_pb2.CROSS_ENTROPY_LOSS),)),
)
#: The shipped pointwise block (CE, T=1) against each ranking kd loss beside it (two kd
#: blocks, as EasyRec recommends), all from the DCN of teacher.config (the fine-ranking model
#: the pre-ranker should agree with); RANKING_ALONE_SETTINGS drop the pointwise block.
POINTWISE_CE = "CE (pointwise)"
RANKING_SETTINGS = (Setting(POINTWISE_CE),) + tuple(
    Setting(f"CE + {name}", ranking=ranking)
    for name, ranking in (*quality_ranking.RANKING_LOSSES, *quality_ranking.BATCH_LOGISTIC))
RANKING_ALONE_SETTINGS = (Setting(POINTWISE_CE),) + tuple(
    Setting(name, ranking=ranking, pointwise=False)
    for name, ranking in quality_ranking.RANKING_LOSSES)
TEACHERS = (DCN, DCN + RANKING_ONLY, GBDT, GBDT + RANKING_ONLY)


# ---------------------------------------------------------------- progress and seeds


class Clock:
    """Prints progress lines with the time elapsed since the bench started."""

    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", flush=True)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy, TF and Keras; TF's global seed also fixes tf.data's shuffle."""
    import keras

    keras.utils.set_random_seed(seed)


# ---------------------------------------------------------------- data and configs


def prepare_data(data: str, out_dir: str, movielens_dir: str = MOVIELENS_DIR):
    """Writes the dataset and its three configs.

    Returns:
        ``(SampleData, names of the privileged features)``, or None if MovieLens is absent.
    """
    from recdistill.data import movielens, sample

    if data == "sample":
        written, features = sample.write_sample_data(out_dir), sample.SAMPLE_FEATURES
    elif not os.path.isdir(movielens_dir):
        return None
    else:
        written = movielens.prepare_movielens(movielens_dir, out_dir)
        features = movielens.MOVIELENS_FEATURES
    return written, {f.name for f in features if f.group == sample.PRIVILEGED_GROUP}


def teacher_configs(teacher_cfg, privileged: set) -> dict:
    """Every teacher of ``TEACHERS``, derived from ``teacher.config``.

    The GBDT replaces the ``dcn`` block by ``gbdt {}`` (YDF defaults); a ``RANKING_ONLY``
    teacher drops the privileged features from feature_config and its feature group (the
    column stays in the files, unread), so it knows only what is known at serving time.
    """
    configs = {}
    for name in TEACHERS:
        cfg = pipeline_pb2.EasyRecConfig()
        cfg.CopyFrom(teacher_cfg)
        if name.startswith(GBDT):
            cfg.model_config.model_class = GBDT
            cfg.model_config.gbdt.SetInParent()  # the model oneof: clears dcn
        if name.endswith(RANKING_ONLY):
            keep_features(cfg, {config_lib.feature_name(f) for f in cfg.feature_config.features
                                if config_lib.feature_name(f) not in privileged})
        configs[name] = cfg
    return configs


def keep_features(cfg, names: set) -> None:
    """Drops every feature of ``cfg`` not in ``names`` from feature_config and its feature
    groups (the columns stay in the files, unread); edits ``cfg`` in place."""
    kept = [f for f in cfg.feature_config.features if config_lib.feature_name(f) in names]
    del cfg.feature_config.features[:]
    cfg.feature_config.features.extend(kept)
    for group in cfg.model_config.feature_groups:
        grouped = [n for n in group.feature_names if n in names]
        del group.feature_names[:]
        group.feature_names.extend(grouped)


def kd_description(student_cfg, setting: Setting) -> str:
    """The effective kd blocks of a setting, e.g. ``DCN → CROSS_ENTROPY_LOSS T=2 w=1``."""
    cfg = setting.apply(student_cfg)
    texts = []
    if setting.pointwise:
        block = cfg.model_config.kd[0]
        text = f"{pipeline_pb2.LossType.Name(block.loss_type)} T={block.temperature:g} " \
               f"w={block.loss_weight:g}"
        if block.scale_by_temperature_squared:
            text += " ×T²"
        texts.append(text)
    if setting.ranking is not None:
        texts.append(setting.ranking.describe())
    return f"{setting.teacher} → {' + '.join(texts)}"


# ---------------------------------------------------------------- one seed


@dataclasses.dataclass
class Paths:
    """Where one seed's models, soft labels and evaluations go."""

    root: str

    def model(self, name: str) -> str:
        return os.path.join(self.root, "models", _slug(name))

    def soft_labels(self, teacher: str) -> str:
        return os.path.join(self.root, "soft_labels", _slug(teacher))

    def evaluation(self, name: str) -> str:
        return os.path.join(self.root, "eval", _slug(name))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def train_model(cfg, seed: int, model_dir: str, train_uri: str,
                eval_uri: str | None = None) -> str:
    """Trains ``cfg`` from scratch with ``seed``; returns its export folder.

    ``eval_uri`` is the table its eval metrics and early stopping read (default: the
    config's ``eval_input_path``).
    """
    from recdistill import training

    seed_everything(seed)
    return training.train(cfg, train_uri=train_uri, eval_uri=eval_uri,
                          model_dir=model_dir).export_dir


def label_training_data(teacher_export: str, student_cfg, train_uri: str, out_dir: str) -> str:
    """Runs the soft-label job (DirectRunner) over the training table; returns its output."""
    from recdistill.soft_labels import job

    job.generate_soft_labels(teacher_export, train_uri, out_dir, student_cfg,
                             runner="DirectRunner")
    return out_dir


def evaluate_student(student: str, cfg, eval_uri: str, teacher: str, baseline: str,
                     out_dir: str) -> dict:
    """The evaluation's per-model metrics: ``{"student"|"teacher"|"baseline": {auc, ...}}``.

    Consistency with the teacher is measured per user (``quality_ranking.SESSION``) for every
    setting, pointwise ones included, so the rows compare.
    """
    from recdistill import evaluation

    result = evaluation.evaluate(student, eval_uri, cfg, teacher_uri=teacher,
                                 baseline_uri=baseline, out_dir=out_dir,
                                 session_field=quality_ranking.SESSION)
    return result.metrics["models"]


def _evaluation(paths: Paths, setting: Setting) -> dict | None:
    """A setting's evaluation (metrics.json's ``models``) from an earlier run, or None."""
    import json

    from recdistill import evaluation

    path = os.path.join(paths.evaluation(setting.name), evaluation.METRICS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)["models"]


def _trained(cfg, seed: int, model_dir: str, train_uri: str) -> str:
    """The export of ``model_dir`` when an earlier run finished it, else a fresh training."""
    from recdistill import exported

    done = exported.export_dir(model_dir)
    if os.path.exists(os.path.join(done, exported.METADATA_FILE)):
        return done
    return train_model(cfg, seed, model_dir, train_uri)


def run_seed(seed: int, data, privileged: set, settings, work_dir: str, clock: Clock, *,
             train: bool = True) -> dict:
    """Trains and evaluates every model for one seed; returns model name -> metrics.

    Resumes: models, soft labels and evaluations an earlier run over the same ``work_dir``
    finished are reused, so a setting added later trains alone. With ``train`` False only
    those are returned (settings not evaluated yet are left out).
    """
    paths = Paths(os.path.join(work_dir, f"seed{seed}"))
    evaluated = {s.name: _evaluation(paths, s) for s in settings}
    if not train:
        settings = [s for s in settings if evaluated[s.name] is not None]
    todo = [s for s in settings if evaluated[s.name] is None]
    teacher_cfgs = teacher_configs(config_lib.load_config(data.teacher_config), privileged)
    student_cfg = config_lib.load_config(data.student_config)

    teachers, soft = {}, {}
    for kind in sorted({s.teacher for s in todo}):
        clock.say(f"seed {seed}: the {kind} teacher and its soft labels")
        teachers[kind] = _trained(teacher_cfgs[kind], seed, paths.model(kind), data.train_path)
        soft[kind] = paths.soft_labels(kind)
        if not os.path.exists(os.path.join(soft[kind], "stats.json")):
            label_training_data(teachers[kind], student_cfg, data.train_path, soft[kind])
    if todo:
        baseline = _trained(config_lib.without_kd(student_cfg), seed, paths.model(NO_KD),
                            data.train_path)

    results = {}
    for setting in settings:
        models = evaluated[setting.name]
        if models is None:
            clock.say(f"seed {seed}: training DSSM + kd, {setting.name}")
            cfg = setting.apply(student_cfg)
            train_uri = soft[setting.teacher]
            if quality_ranking.TEACHER_RANK in config_lib.soft_label_fields(cfg):
                train_uri = quality_ranking.with_teacher_ranks(
                    train_uri, student_cfg, cfg, paths.soft_labels(f"{setting.name} ranks"))
            student = train_model(cfg, seed, paths.model(setting.name), train_uri)
            models = evaluate_student(student, cfg, data.eval_path, teachers[setting.teacher],
                                      baseline, paths.evaluation(setting.name))
        results[setting.name] = models["student"]
        results[f"teacher {setting.teacher}"] = models["teacher"]
        results[NO_KD] = models["baseline"]
    clock.say(f"seed {seed}: done " + ", ".join(
        f"{name} {values['auc']:.4f}" for name, values in results.items()))
    return results


# ---------------------------------------------------------------- summary

#: The per-model metrics the tables show (the evaluation's names), and their headers.
METRICS = {"auc": "AUC", "gauc": "GAUC", "logloss": "logloss",
           "teacher_topk_recall": "teacher top-k recall", "teacher_ndcg": "NDCG@k vs teacher"}


@dataclasses.dataclass
class Row:
    """One line of the table: a model's metrics over seeds, and its kd gain if distilled.

    ``values`` maps each of :data:`METRICS` to its per-seed values (NaN where the evaluation
    has none, e.g. the teacher's consistency with itself).
    """

    name: str
    kd: str
    values: dict
    gain: float | None = None
    gain_std: float | None = None
    recovered: float | None = None
    seeds: int = 0

    @property
    def auc(self) -> np.ndarray:
        return self.values["auc"]


def summarize(per_seed: list, settings, student_cfg) -> list:
    """Table rows: the teachers, the no-kd baseline, then each kd setting with its gain.

    A setting missing from some seeds (a run reported with ``--report-only`` before it
    finished) is summarised over the seeds it has, its gain against the same seeds' baseline;
    ``Row.seeds`` says how many.
    """
    by_model = collections.defaultdict(dict)  # name -> seed -> values
    for seed, results in enumerate(per_seed):
        for name, values in results.items():
            by_model[name][seed] = values

    def row(name, kd="", seeds=None):
        seeds = sorted(by_model[name]) if seeds is None else seeds
        values = {m: np.array([np.nan if by_model[name][i].get(m) is None
                               else by_model[name][i][m] for i in seeds], dtype=float)
                  for m in METRICS}
        return Row(name, kd, values, seeds=len(seeds))

    rows = [row(f"teacher {name}") for name in TEACHERS if f"teacher {name}" in by_model]
    baseline = row(NO_KD, "none")
    rows.append(baseline)
    for setting in settings:
        if setting.name not in by_model:
            continue
        seeds = sorted(by_model[setting.name])
        r = row(setting.name, kd_description(student_cfg, setting), seeds)
        paired = row(NO_KD, seeds=seeds).auc
        gains = r.auc - paired
        gap = row(f"teacher {setting.teacher}", seeds=seeds).auc
        r.gain, r.gain_std = float(gains.mean()), float(gains.std())
        gap_mean = float(np.mean(gap) - paired.mean())
        r.recovered = r.gain / gap_mean if gap_mean > 0 else None
        rows.append(r)
    return rows


def _pm(values: np.ndarray) -> str:
    return "" if np.isnan(values).all() else f"{values.mean():.4f} ± {values.std():.4f}"


def table(rows: list, metrics: tuple) -> str:
    """The results as a Markdown table with the given :data:`METRICS` columns."""
    most = max(r.seeds for r in rows)
    lines = ["| model | kd | " + " | ".join(METRICS[m] for m in metrics)
             + " | kd gain (AUC) | gap recovered |",
             "|---|---|" + "---|" * len(metrics) + "---|---|"]
    for r in rows:
        gain = f"{r.gain:+.4f} ± {r.gain_std:.4f}" if r.gain is not None else ""
        recovered = ("" if r.gain is None else "n/a: teacher not ahead" if r.recovered is None
                     else f"{100 * r.recovered:.0f}%")
        name = r.name if r.seeds == most else f"{r.name} ({r.seeds} seed{'s' * (r.seeds > 1)})"
        lines.append(f"| {name} | {r.kd} | "
                     + " | ".join(_pm(r.values[m]) for m in metrics)
                     + f" | {gain} | {recovered} |")
    return "\n".join(lines)


#: Line styles of the reference models in the plots.
STYLES = {NO_KD: ("tab:gray", "--"), f"teacher {DCN}": ("tab:red", "-"),
          f"teacher {DCN + RANKING_ONLY}": ("tab:orange", ":"),
          f"teacher {GBDT}": ("tab:green", "-."),
          f"teacher {GBDT + RANKING_ONLY}": ("tab:olive", (0, (1, 3)))}


def plot(rows: list, metrics: tuple, path: str, title: str) -> None:
    """One panel per metric: each setting's mean with std error bars, reference models as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = [r for r in rows if r.gain is not None]
    fig, axes = plt.subplots(1, len(metrics), figsize=(8 * len(metrics), 4.5), squeeze=False)
    x = np.arange(len(students))
    for ax, metric in zip(axes[0], metrics):
        ax.errorbar(x, [r.values[metric].mean() for r in students],
                    yerr=[r.values[metric].std() for r in students],
                    fmt="o", capsize=4, color="tab:blue", label="DSSM + kd")
        for r in rows:
            if r.name in STYLES and not np.isnan(r.values[metric]).all():
                color, style = STYLES[r.name]
                ax.axhline(r.values[metric].mean(), color=color, linestyle=style,
                           label=f"{r.name} ({r.values[metric].mean():.4f})")
        ax.set_xticks(x, [r.name for r in students], rotation=20, ha="right")
        ax.set_ylabel(f"eval {METRICS[metric]}")
        ax.legend(fontsize=8, loc="best")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> str:
    """CPU model, core count and load average, for the results file."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load} (1/5/15 min) at the end"


#: Everything after this line in a results file is hand-written analysis that reruns keep.
NOTES_MARKER = "<!-- findings: kept by bench/quality.py when it rewrites this file -->"


def _kept_findings(path: str) -> str:
    """The hand-written part of an existing results file (from NOTES_MARKER on), or ''."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    return text[text.index(NOTES_MARKER):] if NOTES_MARKER in text else ""


@dataclasses.dataclass(frozen=True)
class Suite:
    """A part of the bench that runs on its own: its settings, results file and columns."""

    name: str
    settings: tuple
    stem: str  # results file name, before -<data>.md
    metrics: tuple  # table columns (of METRICS)
    plotted: tuple  # plot panels (of METRICS)
    intro: str


RANKING_METRICS = ("auc", "gauc", "teacher_topk_recall", "teacher_ndcg", "logloss")
SUITES = {
    "pointwise": Suite(
        "pointwise", POINTWISE_SETTINGS, "quality", ("auc", "gauc", "logloss"), ("auc",),
        "Pointwise kd: loss types, temperatures and teachers."),
    "ranking-alone": Suite(
        "ranking-alone", RANKING_ALONE_SETTINGS, "quality-ranking-alone", RANKING_METRICS,
        ("gauc", "teacher_topk_recall"),
        "Each ranking kd loss without the pointwise block (see the ranking suite)."),
    "ranking": Suite(
        "ranking", RANKING_SETTINGS, "quality-ranking", RANKING_METRICS,
        ("gauc", "teacher_topk_recall"),
        f"Ranking kd (session = `{quality_ranking.SESSION}`: neither dataset has a request "
        "column) next to the shipped pointwise CE block, all from the DCN teacher of "
        "teacher.config. A ranking block batches whole sessions; `CE (pointwise)` trains on "
        "row-shuffled batches as shipped. Teacher top-k recall: the share of the teacher's top "
        "k of a user's eval rows in the student's top m; NDCG@k: the student's order with the "
        "teacher's probabilities as gains (`recdistill.metrics.teacher_consistency`, the "
        "evaluation's defaults k = m = 10)."),
}
#: The failure scenarios of issue 11 (bench/quality_scenarios.py): their own runner and table.
SCENARIOS = "scenarios"
SUITES[SCENARIOS] = Suite(SCENARIOS, (), "quality-scenarios", (), (), "")


def write_report(out_dir: str, data: str, suite: Suite, rows: list, seeds: int,
                 seconds: float, notes: str) -> str:
    """Writes <suite stem>-<data>.md and its PNG; returns the .md path."""
    os.makedirs(out_dir, exist_ok=True)
    png = f"{suite.stem}-{data}.png"
    plot(rows, suite.plotted, os.path.join(out_dir, png),
         f"DSSM + kd on {data}, {seeds} seed(s)")
    return write_text_report(
        out_dir, f"{suite.stem}-{data}.md",
        f"# kd quality on {data}: {suite.name} suite\n\n{suite.intro}\n\n"
        f"Mean ± std over {seeds} seed(s). kd gain = student + kd − student without kd "
        "(AUC, per seed, then averaged); gap recovered = mean gain / (mean teacher AUC − "
        "mean no-kd AUC), against the setting's own teacher.\n\n"
        f"{table(rows, suite.metrics)}\n\n![{suite.name} kd per setting]({png})\n\n{notes}",
        seconds)


def write_text_report(out_dir: str, name: str, body: str, seconds: float) -> str:
    """Writes ``body`` and how it was measured to ``out_dir/name``; returns the path.

    The measured part is rewritten; findings written below ``NOTES_MARKER`` are kept.
    """
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    findings = _kept_findings(path) or NOTES_MARKER + "\n"
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/quality.py",
                                                *sys.argv[1:]])
    text = (f"{body}- command: `{command}`\n"
            f"- machine: {machine()}\n"
            f"- wall time: {seconds / 60:.1f} min ({seconds:.0f} s)\n\n"
            f"{findings}")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def sample_reference() -> str:
    """The sample's Bayes-optimal eval AUCs, with and without the privileged position.

    The generator knows each row's true click probability, so these are the ceilings of a
    teacher that sees ``position`` and of any student, which cannot.
    """
    from recdistill import metrics
    from recdistill.data import sample

    generated = sample.generate_sample()
    eval_rows = slice(generated.n_train, None)
    labels = generated.columns[sample.LABEL][eval_rows]
    with_position = metrics.auc(labels, generated.click_prob[eval_rows])
    without = metrics.auc(labels, generated.click_prob_without_privileged[eval_rows])
    return (f"Bayes-optimal eval AUC (true click probabilities of the generator): "
            f"{with_position:.4f} with `position`, {without:.4f} without it (the ceiling of "
            "any student).\n\n")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("sample", "movielens"), required=True)
    parser.add_argument("--suite", choices=(*SUITES, "all"), default="pointwise",
                        help="which part to run (each writes its own results file); "
                             "all: every suite in turn")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--movielens-dir", default=MOVIELENS_DIR,
                        help="the unpacked ml-100k folder (default: ../shared/data/ml-100k "
                             "of the checkout)")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"),
                        help="folder for the results files (.md and .png)")
    parser.add_argument("--only", action="append", default=[], metavar="SETTING",
                        help="train only this setting of the suite (repeatable); the report "
                             "still shows every setting evaluated in --work-dir")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report what earlier runs over --work-dir "
                             "evaluated (each setting over the seeds it has)")
    parser.add_argument("--work-dir", default="",
                        help="models, soft labels and evaluations (default: a temp folder)")
    parser.add_argument("--validation-split", choices=("user", "time"), default="user",
                        help="scenarios suite: the kd sweep's holdout (the pipeline's "
                             "validation_split; default user, as shipped)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="scenarios suite: the holdout's share (the pipeline's "
                             "validation_fraction; default 0.1, as shipped)")
    return parser.parse_args(argv)


def run_suite(suite: Suite, args, work_dir: str) -> str:
    """Runs one suite on ``args.data`` over every seed; returns the results file."""
    clock = Clock()
    prepared = prepare_data(args.data, os.path.join(work_dir, "data"), args.movielens_dir)
    if prepared is None:
        print(f"MovieLens-100K not found at {os.path.normpath(args.movielens_dir)}; skipping. "
              "Unzip https://files.grouplens.org/datasets/movielens/ml-100k.zip there.")
        return ""
    data, privileged = prepared
    clock.say(f"{args.data}, {suite.name} suite: data and configs in {data.out_dir}")
    if suite.name == SCENARIOS:
        import quality_scenarios

        return quality_scenarios.run(args.data, data, args.seeds, work_dir, args.out, clock,
                                     split=args.validation_split,
                                     fraction=args.validation_fraction)
    suite_dir = os.path.join(work_dir, suite.name)
    unknown = set(args.only) - {s.name for s in suite.settings}
    if unknown:
        raise SystemExit(f"--only {sorted(unknown)}: not settings of the {suite.name} suite "
                         f"({', '.join(s.name for s in suite.settings)}).")
    if args.only and not args.report_only:
        for seed in range(args.seeds):
            run_seed(seed, data, privileged, [s for s in suite.settings if s.name in args.only],
                     suite_dir, clock)
    per_seed = [run_seed(seed, data, privileged, suite.settings, suite_dir, clock,
                         train=not (args.report_only or args.only))
                for seed in range(args.seeds)]
    rows = summarize(per_seed, suite.settings, config_lib.load_config(data.student_config))
    print(table(rows, suite.metrics))
    notes = sample_reference() if args.data == "sample" else ""
    path = write_report(args.out, args.data, suite, rows, args.seeds, clock.elapsed(), notes)
    clock.say(f"wrote {path}")
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    suites = list(SUITES.values()) if args.suite == "all" else [SUITES[args.suite]]
    with tempfile.TemporaryDirectory(prefix="recdistill-quality-") as tmp:
        for suite in suites:
            run_suite(suite, args, args.work_dir or tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
