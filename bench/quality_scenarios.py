"""kd's failure scenarios (issue 11): what a user gets when the teacher cannot help.

The two teachers with which fixed kd lost to its baseline in issue 11: a *memorising* teacher
(teacher.config's DCN trained 10 epochs on the student's rows, no early stopping: its soft
labels on those rows repeat the clicks) and a *weak* one (a DCN on the student's own features
for one epoch, below the student). For each dataset and seed the training table is split as
the pipeline's kd sweep splits it (``recdistill.selection.split_validation``: 10% of the
users by default, as shipped, or the latest 10% of rows with ``--validation-split time``), every
model trains on the train part (the student's rows) and, as in the pipeline, evaluates and
stops early on the validation part, and the soft labels come in three kinds:

- *in-fold*: the teacher labels the rows it trained on (what ``prepare_teacher`` did before);
- *cross-fitted*: K = 2 fold teachers of the same config, each trained without one fold of
  users (``training.train(exclude_fold=...)``) and scoring that fold only
  (``soft_labels.job`` with the fold teachers, ``recdistill.cross_fit``);
- *early-stopped*: the shipped teacher.config (a 3-epoch budget with
  ``train_config.early_stopping``: one evaluation per epoch, patience 2, exported at its best
  validation AUC), labelling the rows it trained on.

Each soft-label set trains the student with its kd block as shipped (fixed kd: CE, T = 1),
beside one baseline without kd. The *pushed* model is what the pipeline sends to blessing with
its shipped defaults: the best of {kd, baseline} on the validation part
(``recdistill.selection.select``; a tie goes to the baseline). The *sweep* adds the kd
variants ``SWEEP_VARIANTS`` (pipeline parameter ``kd_variants``) on the same soft labels and
pushes the best of {kd, its variants, baseline} on the validation part. Everything is
evaluated on eval.csv, which no choice looked at. The soft-label job's leak guard (teacher AUC
on the rows it scored vs its eval AUC) is reported beside.
"""

import dataclasses
import math
import os

import numpy as np

import quality  # noqa: E402  (bench/, on sys.path when run as a script)
from recdistill import config as config_lib
from recdistill.protos import pipeline_pb2

MEMORISING, EARLY_STOPPED, WEAK = "memorising", "early-stopped", "weak"
IN_FOLD, CROSS_FITTED = "in-fold", "cross-fitted"
#: Epochs of the memorising (and early-stopped) teacher, and of the weak one.
TEACHER_EPOCHS, WEAK_EPOCHS = 10, 1
#: Fold teachers of the cross-fitted soft labels (issue 11 tried 2).
FOLDS = 2
#: The sweep's kd variants beside the configured block (``kd_variants`` of the pipeline): less
#: kd, and softer soft labels.
SWEEP_VARIANTS = ({"loss_weight": 0.3}, {"temperature": 2})


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A teacher and how its soft labels are made."""

    name: str
    teacher: str  # MEMORISING, EARLY_STOPPED or WEAK
    soft_labels: str = IN_FOLD  # or CROSS_FITTED


SCENARIOS = (
    Scenario("memorising teacher, in-fold", MEMORISING),
    Scenario("memorising teacher, cross-fitted", MEMORISING, CROSS_FITTED),
    Scenario("teacher stopped early, in-fold", EARLY_STOPPED),
    Scenario("weak teacher, in-fold", WEAK),
)


def teacher_config(kind: str, teacher_cfg, student_cfg, train_rows: int):
    """The teacher of ``kind``, from teacher.config, for ``train_rows`` training rows.

    The early-stopped teacher is teacher.config as shipped; the memorising one trains
    ``TEACHER_EPOCHS`` epochs without early stopping; the weak one reads only the student's
    features, ``WEAK_EPOCHS`` epochs, without early stopping.
    """
    cfg = pipeline_pb2.EasyRecConfig()
    cfg.CopyFrom(teacher_cfg)
    if kind == EARLY_STOPPED:
        return cfg
    steps_per_epoch = math.ceil(train_rows / cfg.data_config.batch_size)
    cfg.train_config.ClearField("early_stopping")
    cfg.train_config.num_steps = TEACHER_EPOCHS * steps_per_epoch
    if kind == WEAK:
        cfg.train_config.num_steps = WEAK_EPOCHS * steps_per_epoch
        student = {config_lib.feature_name(f) for f in student_cfg.feature_config.features}
        quality.keep_features(cfg, student)
    cfg.train_config.save_checkpoints_steps = cfg.train_config.num_steps
    return cfg


def split_training_table(data, student_cfg, out_dir: str, split: str,
                         fraction: float) -> tuple:
    """The train and validation parts of train.csv, as the kd sweep carves them (``split``
    and ``fraction``: the pipeline's ``validation_split`` and ``validation_fraction``)."""
    from recdistill import selection

    train_uri, valid_uri = os.path.join(out_dir, "train"), os.path.join(out_dir, "valid")
    if not (os.path.isdir(train_uri) and os.path.isdir(valid_uri)):
        selection.split_validation(data.train_path, student_cfg, train_uri, valid_uri,
                                   split=split, fraction=fraction)
    return train_uri, valid_uri


def _rows(uri: str) -> int:
    from recdistill.data import filesystems

    total = 0
    for path in filesystems.expand(uri):
        with open(path, "rb") as f:
            total += sum(1 for _ in f)
    return total


def soft_labels(teachers, student_cfg, train_uri: str, out_dir: str, key: str = "") -> dict:
    """Runs the soft-label job with one teacher or the fold teachers; returns its stats."""
    from recdistill.soft_labels import job

    return job.generate_soft_labels(teachers, train_uri, out_dir, student_cfg,
                                    runner="DirectRunner", cross_fit_key=key)


def sweep(student: str, baseline: str, student_cfg, seed: int, paths, scenario: str,
          valid_uri: str):
    """Trains the ``SWEEP_VARIANTS`` students on the scenario's soft labels and chooses among
    them, the configured kd ``student`` and the ``baseline`` on ``valid_uri``, as the
    pipeline's select_candidate does; returns the ``selection.Selection``."""
    from recdistill import selection
    from recdistill.kd import variants

    kd_models, overrides = {variants.CONFIGURED: student}, {}
    for index, variant in enumerate(SWEEP_VARIANTS):
        name = variants.variant_name(index)
        cfg = variants.apply_variant(student_cfg, variant, name)
        kd_models[name] = quality.train_model(cfg, seed, paths.model(f"{scenario} {name}"),
                                              paths.soft_labels(scenario), valid_uri)
        overrides[name] = variant
    return selection.select(kd_models, baseline, valid_uri, student_cfg,
                            paths.evaluation(f"{scenario} sweep selection"),
                            overrides=overrides)


def run_seed(seed: int, data, work_dir: str, clock: quality.Clock, split: str,
             fraction: float) -> dict:
    """Every scenario for one seed; returns scenario name -> its measurements."""
    from recdistill import cross_fit, evaluation, selection, training
    from recdistill.data import datasets
    from recdistill.kd import variants

    paths = quality.Paths(os.path.join(work_dir, f"seed{seed}"))
    student_cfg = config_lib.load_config(data.student_config)
    teacher_cfg = config_lib.load_config(data.teacher_config)
    train_uri, valid_uri = split_training_table(data, student_cfg,
                                                os.path.join(work_dir, "split"), split, fraction)
    train_rows = _rows(train_uri)
    key = cross_fit.resolve_key(student_cfg)

    clock.say(f"seed {seed}: training {quality.NO_KD}")
    baseline = quality.train_model(config_lib.without_kd(student_cfg), seed,
                                   paths.model(quality.NO_KD), train_uri, valid_uri)
    results = {}
    teachers = {}
    for scenario in SCENARIOS:
        cfg = teacher_config(scenario.teacher, teacher_cfg, student_cfg, train_rows)
        if scenario.teacher not in teachers:
            clock.say(f"seed {seed}: training the {scenario.teacher} teacher")
            teachers[scenario.teacher] = quality.train_model(
                cfg, seed, paths.model(scenario.teacher), train_uri, valid_uri)
        teacher = teachers[scenario.teacher]
        scoring, fold_key = teacher, ""
        if scenario.soft_labels == CROSS_FITTED:
            fold_cfg = pipeline_pb2.EasyRecConfig()
            fold_cfg.CopyFrom(cfg)
            # Each fold teacher trains as many epochs over its rows as the full one.
            fold_cfg.train_config.num_steps = math.ceil(
                cfg.train_config.num_steps * (FOLDS - 1) / FOLDS)
            fold_cfg.train_config.save_checkpoints_steps = fold_cfg.train_config.num_steps
            scoring, fold_key = [], key
            for fold in range(FOLDS):
                clock.say(f"seed {seed}: training the {scenario.teacher} teacher without "
                          f"fold {fold}")
                quality.seed_everything(seed)
                scoring.append(training.train(
                    fold_cfg, train_uri=train_uri, eval_uri=valid_uri,
                    model_dir=paths.model(f"{scenario.teacher} fold {fold}"),
                    exclude_fold=datasets.ExcludedFold(key, FOLDS, fold)).export_dir)
        clock.say(f"seed {seed}: {scenario.name}: soft labels, kd student, selection")
        stats = soft_labels(scoring, student_cfg, train_uri,
                            paths.soft_labels(scenario.name), fold_key)
        student = quality.train_model(student_cfg, seed, paths.model(scenario.name),
                                      paths.soft_labels(scenario.name), valid_uri)
        chosen = selection.select({variants.CONFIGURED: student}, baseline, valid_uri,
                                  student_cfg, paths.evaluation(f"{scenario.name} selection"))
        models = quality.evaluate_student(student, student_cfg, data.eval_path, teacher,
                                          baseline, paths.evaluation(scenario.name))
        swept = sweep(student, baseline, student_cfg, seed, paths, scenario.name, valid_uri)
        if swept.chosen == selection.BASELINE:
            sweep_pushed = models["baseline"]
        elif swept.chosen == variants.CONFIGURED:
            sweep_pushed = models["student"]
        else:
            sweep_pushed = evaluation.compare_models(
                data.eval_path, student_cfg, {swept.chosen: swept.chosen_uri})[swept.chosen]
        facts = stats["soft_labels"][config_lib.soft_label_fields(student_cfg)[0]]
        label = config_lib.hard_label_fields(student_cfg)[0]
        results[scenario.name] = {
            "teacher": models["teacher"], "kd": models["student"],
            "baseline": models["baseline"],
            "pushed": models["baseline" if chosen.chosen == selection.BASELINE else "student"],
            "pushed_kd": chosen.chosen != selection.BASELINE,
            "sweep": sweep_pushed, "sweep_chosen": swept.chosen,
            "scored_auc": facts["teacher_auc"][label],
            "repeats_clicks": stats["leak_guard"]["repeats_clicks"],
        }
    clock.say(f"seed {seed}: done " + ", ".join(
        f"{name}: kd {r['kd']['auc']:.4f}, pushed {'kd' if r['pushed_kd'] else 'baseline'}"
        for name, r in results.items()))
    return results


def _seed_results(seed: int, data, work_dir: str, clock: quality.Clock, split: str,
                  fraction: float) -> dict:
    """``run_seed``'s results, kept in the seed's folder so that a stopped run resumes at the
    first seed it did not finish."""
    import json

    from recdistill.data import json_files

    path = os.path.join(work_dir, f"seed{seed}", "results.json")
    if os.path.exists(path):
        clock.say(f"seed {seed}: results of an earlier run in {path}")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    results = run_seed(seed, data, work_dir, clock, split, fraction)
    json_files.write_json(path, results)
    return results


# ---------------------------------------------------------------- summary


def _pm(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():+.4f} ± {values.std():.4f}"


def table(per_seed: list) -> str:
    """The Markdown table: per scenario, the teacher, fixed kd and the pushed model vs the
    baseline (AUC and GAUC deltas per seed, then mean ± std over seeds)."""
    seeds = len(per_seed)
    baseline = np.array([next(iter(r.values()))["baseline"]["auc"] for r in per_seed])
    lines = [f"DSSM no kd (baseline): AUC {baseline.mean():.4f} ± {baseline.std():.4f}\n",
             "| scenario | teacher eval AUC | teacher AUC on the rows it scored | leak guard "
             "| fixed kd − baseline (AUC) | pushed − baseline (AUC) | pushed − baseline "
             "(GAUC) | pushed = kd | sweep pushed − baseline (AUC) | sweep pushed − baseline "
             "(GAUC) | sweep pushed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        runs = [r[scenario.name] for r in per_seed]

        def delta(model, metric):
            return [r[model][metric] - r["baseline"][metric] for r in runs]

        teacher = np.array([r["teacher"]["auc"] for r in runs])
        scored = np.array([r["scored_auc"] for r in runs], dtype=float)
        flagged = sum(bool(r["repeats_clicks"]) for r in runs)
        lines.append(
            f"| {scenario.name} | {teacher.mean():.4f} ± {teacher.std():.4f} "
            f"| {scored.mean():.4f} | {flagged}/{seeds} flagged "
            f"| {_pm(delta('kd', 'auc'))} | {_pm(delta('pushed', 'auc'))} "
            f"| {_pm(delta('pushed', 'gauc'))} "
            f"| {sum(r['pushed_kd'] for r in runs)}/{seeds} "
            f"| {_pm(delta('sweep', 'auc'))} | {_pm(delta('sweep', 'gauc'))} "
            f"| {', '.join(r['sweep_chosen'] for r in runs)} |")
    return "\n".join(lines)


def run(data_name: str, data, seeds: int, work_dir: str, out_dir: str,
        clock: quality.Clock, split: str = "user", fraction: float = 0.1) -> str:
    """Runs every scenario over ``seeds`` seeds with the ``split`` holdout of ``fraction`` of
    the keys or rows; writes quality-scenarios-<data>-<split>-holdout[-<percent>pct].md (the
    suffix when ``fraction`` is not the shipped 0.1)."""
    from recdistill import selection

    share = "" if fraction == selection.DEFAULT_FRACTION else f"-{round(fraction * 100)}pct"
    name = f"{split}-holdout{share}"
    per_seed = [_seed_results(seed, data, os.path.join(work_dir, f"scenarios-{split}{share}"),
                              clock, split, fraction)
                for seed in range(seeds)]
    text = table(per_seed)
    print(text)
    return quality.write_text_report(
        out_dir, f"quality-scenarios-{data_name}-{name}.md",
        f"# kd failure scenarios on {data_name}, {split} holdout of {fraction:.0%}\n\n"
        f"{__doc__.split(chr(10) * 2, 1)[1]}\n"
        f"Mean ± std over {seeds} seed(s) of the per-seed difference to the baseline.\n\n"
        f"{text}\n\n", clock.elapsed())
