"""The embedded sample dataset, and the writer that turns any feature description into files.

This module owns two things:

* ``generate_sample``/``write_sample_data``: a synthetic feed-click log, small enough to train
  on a laptop in seconds and built so that knowledge distillation measurably matters. Clicks come
  from a known logistic model, so the Bayes-optimal AUC with and without the privileged feature
  can be computed exactly (``GeneratedSample.click_prob*``).
* ``Feature``/``render_configs``/``write_dataset``: one renderer for the three EasyRec text configs
  every dataset ships with (a DCN teacher over all features, a DSSM student with a kd block, and
  the same DSSM without kd as the baseline). ``recdistill.data.movielens`` uses it too, so the two
  datasets cannot drift apart.

It imports nothing from recdistill: the configs are written as text and parsed later by
``recdistill.config.load_config``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- column names
USER_ID = "user_id"
AGE = "age"
GENDER = "gender"
INTERESTS = "interests"
ITEM_ID = "item_id"
CATEGORY = "category"
PRICE = "price"
ITEM_TAGS = "item_tags"
#: The privileged feature: the slot the item was shown in, known in the training log but not
#: when the student ranks a candidate (it is what the ranking decides).
POSITION = "position"
#: A ranking feature: the user's click-through rate on this item and similar ones in earlier
#: impressions, from the feature store. Known when ranking, but a cross of user and item, so a
#: two-tower student cannot take it (each tower sees one side only).
USER_ITEM_CTR = "user_item_ctr"
LABEL = "clk"
#: The column the soft-label job appends: the teacher's logit for the row.
SOFT_LABEL = "kd_soft"
TAG_SEPARATOR = "|"

# ---------------------------------------------------------------- file layout
#: Default size and density of the sample. kd needs a teacher clearly better than the student
#: on the student's own features; with 50 impressions per user (the first design) the 25k-row
#: DCN teacher (AUC 0.77, Bayes 0.86) was too weak for its soft labels to beat the clicks,
#: with 100 per user and 50k rows it reaches 0.80 and kd lifts the DSSM (bench/quality.py).
DEFAULT_ROWS = 50_000
ROWS_PER_USER = 100
ROWS_PER_ITEM = 200
TRAIN_FILE = "train.csv"
EVAL_FILE = "eval.csv"
TEACHER_CONFIG = "teacher.config"
STUDENT_CONFIG = "student.config"
STUDENT_NOKD_CONFIG = "student_nokd.config"
#: Where student.config expects the soft-labelled training split (train.csv's columns plus
#: ``kd_soft``), relative to the config's folder; the soft-label job writes it. Evaluation
#: reads the raw eval.csv: soft labels are a training signal only.
SOFT_LABELED_TRAIN = "soft_labels/train"
#: model_dir of each config, relative to the config's folder.
TEACHER_MODEL_DIR = "models/teacher"
STUDENT_MODEL_DIR = "models/student"
STUDENT_NOKD_MODEL_DIR = "models/student_nokd"

# ---------------------------------------------------------------- feature roles
USER_GROUP = "user"
ITEM_GROUP = "item"
#: Teacher-only features of two kinds: ``ranking`` ones are known at serving time but cross user
#: and item (what a fine-ranking model has over a two-tower pre-ranker), ``privileged`` ones
#: exist only in the training log. kd can pass on what a ranking feature says about (user,
#: item), but hardly what a privileged one says about the moment (bench/quality.py).
RANKING_GROUP = "ranking"
PRIVILEGED_GROUP = "privileged"
_GROUPS = (USER_GROUP, ITEM_GROUP, RANKING_GROUP, PRIVILEGED_GROUP)
_FEATURE_TYPES = ("IdFeature", "RawFeature", "TagFeature")
_INPUT_TYPES = ("INT32", "INT64", "STRING", "FLOAT", "DOUBLE", "BOOL")


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input column and the feature built on it, as the configs should declare it.

    Attributes:
        name: the column and feature name.
        input_type: a DatasetConfig.FieldType name (STRING, INT64, FLOAT, ...).
        feature_type: IdFeature, RawFeature or TagFeature.
        group: ``user`` or ``item`` (the DSSM tower that reads it; the teacher reads all), or
            ``ranking``/``privileged`` (only the teacher reads it; see ``RANKING_GROUP``).
        embedding_dim: embedding size; 0 for a RawFeature fed as a number.
        hash_bucket_size, num_buckets, vocab_list: how an Id/TagFeature maps values to rows.
        boundaries: bucket edges of a RawFeature (bucketised and embedded).
        min_val, max_val: min-max normalisation of a RawFeature fed as a number.
    """

    name: str
    input_type: str
    feature_type: str
    group: str
    embedding_dim: int = 0
    hash_bucket_size: int = 0
    num_buckets: int = 0
    vocab_list: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    min_val: float | None = None
    max_val: float | None = None

    def __post_init__(self):
        for field, value, valid in (("group", self.group, _GROUPS),
                                    ("feature_type", self.feature_type, _FEATURE_TYPES),
                                    ("input_type", self.input_type, _INPUT_TYPES)):
            if value not in valid:
                raise ValueError(f"Feature {self.name!r}: {field} must be one of "
                                 f"{', '.join(valid)}, got {value!r}.")

    def to_text(self) -> str:
        """Renders the ``features { ... }`` block of an EasyRec config."""
        parts = [f"input_names: '{self.name}'", f"feature_type: {self.feature_type}"]
        if self.embedding_dim:
            parts.append(f"embedding_dim: {self.embedding_dim}")
        if self.hash_bucket_size:
            parts.append(f"hash_bucket_size: {self.hash_bucket_size}")
        if self.num_buckets:
            parts.append(f"num_buckets: {self.num_buckets}")
        parts += [f"vocab_list: '{v}'" for v in self.vocab_list]
        if self.boundaries:
            parts.append(f"boundaries: [{', '.join(_number(b) for b in self.boundaries)}]")
        if self.min_val is not None:
            parts.append(f"min_val: {_number(self.min_val)}")
        if self.max_val is not None:
            parts.append(f"max_val: {_number(self.max_val)}")
        if self.feature_type == "TagFeature":
            parts.append(f"separator: '{TAG_SEPARATOR}'")
        return "  features {\n" + "".join(f"    {p}\n" for p in parts) + "  }\n"


@dataclasses.dataclass(frozen=True)
class SampleData:
    """Where a prepared dataset was written (all paths absolute)."""

    out_dir: str
    train_path: str
    eval_path: str
    teacher_config: str
    student_config: str
    student_nokd_config: str


def _number(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x)) + ".0"


def _input_fields(features: Sequence[Feature], soft_label: bool) -> str:
    fields = [(f.name, f.input_type) for f in features] + [(LABEL, "INT32")]
    if soft_label:
        fields.append((SOFT_LABEL, "DOUBLE"))
    return "".join(f"  input_fields {{ input_name: '{n}' input_type: {t} }}\n" for n, t in fields)


def _feature_group(name: str, features: Sequence[Feature]) -> str:
    names = ", ".join(f"'{f.name}'" for f in features)
    return f"  feature_groups {{\n    group_name: '{name}'\n    feature_names: [{names}]\n    wide_deep: DEEP\n  }}\n"


def _dnn(hidden_units: Sequence[int]) -> str:
    return f"dnn {{ hidden_units: [{', '.join(str(u) for u in hidden_units)}] }}"


def _render(*, model_block: str, columns: Sequence[Feature], features: Sequence[Feature],
            soft_label: bool,
            train_path: str, eval_path: str, model_dir: str, batch_size: int,
            num_steps: int, early_stopping: bool = False) -> str:
    labels = f"'{LABEL}', '{SOFT_LABEL}'" if soft_label else f"'{LABEL}'"
    # The teacher is evaluated about once per epoch (it trains 3 by default) and exported at
    # its best eval AUC, so it stops before it memorises the rows it then labels (issue 11).
    stopping = ("  early_stopping {\n"
                "    metric: 'auc'\n"
                "    patience: 2\n"
                f"    eval_every_steps: {max(1, num_steps // 3)}\n"
                "  }\n") if early_stopping else ""
    return (
        f"train_input_path: '{train_path}'\n"
        f"eval_input_path: '{eval_path}'\n"
        f"model_dir: '{model_dir}'\n\n"
        "train_config {\n"
        "  optimizer_config {\n"
        "    adam_optimizer {\n"
        "      learning_rate { constant_learning_rate { learning_rate: 0.001 } }\n"
        "    }\n"
        "  }\n"
        f"  num_steps: {num_steps}\n"
        f"  log_step_count_steps: {max(1, num_steps // 10)}\n"
        f"  save_checkpoints_steps: {num_steps}\n"
        + stopping
        + "}\n\n"
        "eval_config {\n"
        "  metrics_set { auc {} }\n"
        f"  metrics_set {{ gauc {{ uid_field: '{USER_ID}' }} }}\n"
        "}\n\n"
        "data_config {\n"
        f"  batch_size: {batch_size}\n"
        "  input_type: CSVInput\n"
        "  separator: ','\n"
        + _input_fields(columns, soft_label)
        + f"  label_fields: [{labels}]\n"
        "}\n\n"
        "feature_config {\n" + "".join(f.to_text() for f in features) + "}\n\n"
        + model_block
    )


def render_configs(features: Sequence[Feature], *, batch_size: int, num_steps: int,
                   teacher_num_steps: int | None = None,
                   hidden_units: Sequence[int] = (64, 32)) -> dict[str, str]:
    """Renders the teacher, kd-student and baseline-student configs for one feature description.

    All three read the same columns (``features`` in order, then ``clk``; the kd student also a
    last DOUBLE ``kd_soft``), so one file layout serves every model:

    * teacher: DCN over every feature, ranking and privileged ones included, on train.csv,
      with early stopping on the eval AUC (exported at its best evaluation);
    * student: DSSM, user tower over the ``user`` group and item tower over the ``item`` group,
      with one kd block distilling the teacher's logit (``kd_soft``, written by the soft-label job
      into ``soft_labels/train`` and ``soft_labels/eval``) into the student's ``logits``;
    * student_nokd: the same DSSM on train.csv with the click label only, the baseline.

    Args:
        features: the columns in file order; groups decide which model reads which feature.
        batch_size: data_config.batch_size of all three.
        num_steps: train_config.num_steps of the two students.
        teacher_num_steps: train_config.num_steps of the teacher (default: ``num_steps``).
        hidden_units: the DNN sizes of the towers; the DCN's final DNN takes the last one.

    Returns:
        ``{"teacher": text, "student": text, "student_nokd": text}``.

    Raises:
        ValueError: if the user or item group is empty, or names repeat.
    """
    names = [f.name for f in features]
    duplicated = sorted({n for n in names if names.count(n) > 1} | ({LABEL, SOFT_LABEL} & set(names)))
    if duplicated:
        raise ValueError(f"features: column names must be unique and not {LABEL!r}/{SOFT_LABEL!r}, "
                         f"got duplicates {duplicated}. Rename the columns.")
    groups = {g: [f for f in features if f.group == g] for g in _GROUPS}
    for g in (USER_GROUP, ITEM_GROUP):
        if not groups[g]:
            raise ValueError(f"features: the {g!r} group is empty, got groups "
                             f"{[f.group for f in features]}. The DSSM student needs a feature "
                             f"for each tower.")
    dnn = _dnn(hidden_units)
    teacher_model = (
        "model_config {\n"
        "  model_class: 'DCN'\n"
        + _feature_group("all", features)
        + "  dcn {\n"
        f"    deep_tower {{ input: 'all' {dnn} }}\n"
        "    cross_tower { input: 'all' cross_num: 3 }\n"
        f"    final_dnn {{ hidden_units: [{hidden_units[-1]}] }}\n"
        "  }\n"
        "}\n")

    def dssm_model(kd: bool) -> str:
        kd_block = (
            "  kd {\n"
            f"    soft_label_name: '{SOFT_LABEL}'\n"
            "    pred_name: 'logits'\n"
            "    loss_type: CROSS_ENTROPY_LOSS\n"
            "    loss_weight: 1.0\n"
            "    temperature: 1.0\n"
            "    label_is_logits: true\n"
            "  }\n") if kd else ""
        return (
            "model_config {\n"
            "  model_class: 'DSSM'\n"
            + _feature_group(USER_GROUP, groups[USER_GROUP])
            + _feature_group(ITEM_GROUP, groups[ITEM_GROUP])
            + "  dssm {\n"
            f"    user_tower {{ id: '{USER_GROUP}' {dnn} }}\n"
            f"    item_tower {{ id: '{ITEM_GROUP}' {dnn} }}\n"
            "    simi_func: COSINE\n"
            "    scale_simi: true\n"
            "  }\n"
            + kd_block
            + "}\n")

    student_features = groups[USER_GROUP] + groups[ITEM_GROUP]
    common = dict(columns=features, batch_size=batch_size)
    return {
        "teacher": _render(model_block=teacher_model, features=features, soft_label=False,
                           train_path=TRAIN_FILE, eval_path=EVAL_FILE,
                           model_dir=TEACHER_MODEL_DIR,
                           num_steps=teacher_num_steps or num_steps, early_stopping=True,
                           **common),
        "student": _render(model_block=dssm_model(True), features=student_features,
                           soft_label=True, train_path=SOFT_LABELED_TRAIN,
                           eval_path=EVAL_FILE, model_dir=STUDENT_MODEL_DIR,
                           num_steps=num_steps, **common),
        "student_nokd": _render(model_block=dssm_model(False), features=student_features,
                                soft_label=False, train_path=TRAIN_FILE, eval_path=EVAL_FILE,
                                model_dir=STUDENT_NOKD_MODEL_DIR, num_steps=num_steps,
                                **common),
    }


def _csv_text(path: str, columns: Mapping[str, np.ndarray], names: Sequence[str]) -> str:
    """The headerless CSV ``path`` will hold (``path`` names the file in errors)."""
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are declared as features but missing from the "
                         f"data, got {sorted(columns)}. Add them or drop the features.")
    frame = pd.DataFrame({n: columns[n] for n in names})
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            bad = frame[name].astype(str).str.contains(",", regex=False)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(f"{path}: row {row} column {name!r} contains the CSV separator ',', "
                                 f"got {frame[name].iloc[row]!r}. Replace it before writing.")
    return frame.to_csv(header=False, index=False, lineterminator="\n")


def _write_files(texts: Mapping[str, str], overwrite: bool) -> None:
    """Writes ``path -> text``, each file whole (temp + rename).

    A file that exists with other content is someone's edit (a tuned config, curated rows):
    it is replaced only with ``overwrite``; rewriting identical content is always fine, so a
    rerun with the same seed needs no flag.

    Raises:
        FileExistsError: files with other content exist and ``overwrite`` is False; nothing
            is written then.
    """
    changed = []
    for path, text in texts.items():
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                if f.read() != text:
                    changed.append(path)
    if changed and not overwrite:
        raise FileExistsError(
            f"{', '.join(changed)}: exist with other content (edited, or another seed/size) and "
            "would be overwritten. Write the sample to another folder (--out), or pass "
            "--overwrite to replace them.")
    for path in changed:
        logger.warning("Overwriting %s", path)
    for path, text in texts.items():
        staging = f"{path}.tmp-{os.getpid()}"
        with open(staging, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(staging, path)


def write_dataset(out_dir: str, features: Sequence[Feature], train: Mapping[str, np.ndarray],
                  eval: Mapping[str, np.ndarray], *, batch_size: int,
                  epochs: int = 10, teacher_epochs: int = 3,
                  overwrite: bool = False) -> SampleData:
    """Writes train.csv, eval.csv and the three configs of one dataset into ``out_dir``.

    The CSVs have no header and hold ``features`` in order, then ``clk`` (EasyRec CSVInput:
    column order = input_fields), so every config reads them as they are.

    Args:
        out_dir: local folder, created if missing. Existing files of the same names are
            replaced when their content is what this call writes (a rerun), else only with
            ``overwrite``.
        features: the feature columns in file order (see ``render_configs``).
        train, eval: column name -> values (one array per feature, plus ``clk``), rows in order.
        batch_size: data_config.batch_size of the configs.
        epochs: how many passes over train.csv the students' num_steps amounts to.
        teacher_epochs: the same for the teacher. Fewer than the students': a teacher that
            trains longer memorises its training rows (bench/quality.py measured train AUC 0.98
            vs eval 0.74 on the sample after 10 epochs), and its soft labels on those very rows
            then repeat the clicks instead of adding knowledge; 3 epochs gave a better eval
            AUC too (sample 0.738 -> 0.757, MovieLens 0.719 -> 0.725).

    Returns:
        The written paths.

    Raises:
        ValueError: if a column is missing or a string value contains the separator ','.
        FileExistsError: a file of another content is in the way and ``overwrite`` is False.
    """
    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    names = [f.name for f in features] + [LABEL]
    n_train = len(train[LABEL])
    steps_per_epoch = math.ceil(n_train / batch_size)
    paths = SampleData(out_dir=out_dir,
                       train_path=os.path.join(out_dir, TRAIN_FILE),
                       eval_path=os.path.join(out_dir, EVAL_FILE),
                       teacher_config=os.path.join(out_dir, TEACHER_CONFIG),
                       student_config=os.path.join(out_dir, STUDENT_CONFIG),
                       student_nokd_config=os.path.join(out_dir, STUDENT_NOKD_CONFIG))
    configs = render_configs(features, batch_size=batch_size,
                             num_steps=max(1, epochs * steps_per_epoch),
                             teacher_num_steps=max(1, teacher_epochs * steps_per_epoch))
    _write_files({paths.train_path: _csv_text(paths.train_path, train, names),
                  paths.eval_path: _csv_text(paths.eval_path, eval, names),
                  paths.teacher_config: configs["teacher"],
                  paths.student_config: configs["student"],
                  paths.student_nokd_config: configs["student_nokd"]}, overwrite)
    logger.info("Wrote %d train and %d eval rows and three configs to %s", n_train,
                len(eval[LABEL]), out_dir)
    return paths


# ---------------------------------------------------------------- the synthetic generator
#: The sample's feature columns, in file order.
SAMPLE_FEATURES = (
    Feature(USER_ID, "STRING", "IdFeature", USER_GROUP, embedding_dim=16, hash_bucket_size=2000),
    Feature(AGE, "FLOAT", "RawFeature", USER_GROUP, embedding_dim=8,
            boundaries=(20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0)),
    Feature(GENDER, "STRING", "IdFeature", USER_GROUP, embedding_dim=4, vocab_list=("F", "M")),
    Feature(INTERESTS, "STRING", "TagFeature", USER_GROUP, embedding_dim=8, hash_bucket_size=100),
    Feature(ITEM_ID, "STRING", "IdFeature", ITEM_GROUP, embedding_dim=16, hash_bucket_size=1000),
    Feature(CATEGORY, "STRING", "IdFeature", ITEM_GROUP, embedding_dim=8, hash_bucket_size=50),
    Feature(PRICE, "FLOAT", "RawFeature", ITEM_GROUP, min_val=0.0, max_val=500.0),
    Feature(ITEM_TAGS, "STRING", "TagFeature", ITEM_GROUP, embedding_dim=8, hash_bucket_size=100),
    Feature(USER_ITEM_CTR, "FLOAT", "RawFeature", RANKING_GROUP, min_val=0.0, max_val=1.0),
    Feature(POSITION, "INT64", "IdFeature", PRIVILEGED_GROUP, embedding_dim=4, num_buckets=10),
)

_LATENT_DIM = 4
_NUM_TAGS = 20
_NUM_CATEGORIES = 10
_NUM_SLOTS = 10
_AGE_EDGES = (25.0, 35.0, 45.0, 55.0)  # 5 age bands, the segments of the generator
_BASE_LOGIT = -0.2
#: Logit shift of slot k: the position bias the teacher can explain and the student cannot.
_POSITION_BIAS = -0.4 * np.arange(_NUM_SLOTS)
#: How strongly the previous ranker put affine items in top slots (position ~ relevance).
_RANKER_SHARPNESS = 0.3
#: ``user_item_ctr`` counts k clicks in n ~ Poisson(this) earlier impressions of similar items.
_HISTORY_IMPRESSIONS = 8.0
#: ... and starts from this many impressions' worth of the average click rate.
_PRIOR_IMPRESSIONS = 2.0


@dataclasses.dataclass(frozen=True)
class GeneratedSample:
    """Sample rows in time order, with the generator's true click probabilities.

    Attributes:
        columns: column name -> values, one entry per ``SAMPLE_FEATURES`` column plus ``clk``.
        n_train: the first ``n_train`` rows are the train split, the rest the eval split.
        click_prob: P(click | user, item, position), the Bayes-optimal score with the
            privileged feature.
        click_prob_without_privileged: P(click | user, item), position marginalised out: the
            Bayes-optimal score of a model that cannot see the position.
    """

    columns: dict[str, np.ndarray]
    n_train: int
    click_prob: np.ndarray
    click_prob_without_privileged: np.ndarray

    def split(self, name: str) -> dict[str, np.ndarray]:
        """Returns the columns of ``train`` or ``eval``."""
        rows = {"train": slice(0, self.n_train), "eval": slice(self.n_train, None)}
        if name not in rows:
            raise ValueError(f"split must be 'train' or 'eval', got {name!r}.")
        return {k: v[rows[name]] for k, v in self.columns.items()}


def _tag_lists(rng: np.random.Generator, pools: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Draws ``counts[r]`` distinct tags for row r from ``pools[r]`` (a 0/1 row); returns 0/1 rows."""
    keys = rng.random(pools.shape) + (1.0 - pools) * 2.0  # pool members sort first, in random order
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    return (rank < counts[:, None]).astype(np.int8)


def _tag_strings(prefix: str, onehot: np.ndarray) -> np.ndarray:
    return np.array([TAG_SEPARATOR.join(f"{prefix}{t:02d}" for t in np.flatnonzero(row))
                     for row in onehot], dtype=object)


def generate_sample(rows: int = DEFAULT_ROWS, *, eval_fraction: float = 0.2,
                    seed: int = 0) -> GeneratedSample:
    """Draws a synthetic feed-click log where distillation from a ranking teacher pays off.

    Users (id, age, gender, interest tags) and items (id, category, price, tags) are fixed
    populations; each row is one impression of a popularity-weighted item to an activity-weighted
    user, in time order, so the eval split is later draws of the same users and items. The click
    logit is the sum of

    * a bias per user and per item plus a user·item latent dot product (what two towers model);
    * interactions a two-tower model represents only approximately: +1.2 when the user's
      interests and the item's tags share any tag (an OR, not a dot product), an age-band ×
      category table, and a price sweet spot per gender × age-band segment,
      ``-0.25 * (log price - sweet_spot)^2``;
    * a position bias, -0.4 per slot over 10 slots, where the slot was chosen by a previous
      ranker that favours affine items: the privileged feature, seen by the teacher only.

    The ranking feature ``user_item_ctr`` is the click rate in n ~ Poisson(8) earlier impressions
    of the same (user, item) kind, drawn from the position-free click probability and smoothed
    towards the average: a noisy, unbiased view of everything above except the position. A
    fine-ranking teacher reads it; the two-tower student has to learn the same (user, item)
    structure from ids and tags, which is what the teacher's soft labels help with.

    Sizes scale with ``rows`` (one user per ``ROWS_PER_USER`` rows, one item per
    ``ROWS_PER_ITEM``), and about 20% of rows are
    clicks.

    Args:
        rows: total impressions, train and eval together.
        eval_fraction: the last fraction of rows (by time) that form the eval split.
        seed: seed of the numpy Generator; the same seed gives the same rows.

    Returns:
        The rows and their true click probabilities.

    Raises:
        ValueError: if rows < 100 or eval_fraction is not in (0, 1).
    """
    if rows < 100:
        raise ValueError(f"rows must be >= 100 to give every split users and clicks, got {rows}.")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}. Use e.g. 0.2.")
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, rows // ROWS_PER_USER), max(10, rows // ROWS_PER_ITEM)

    # Users.
    age = rng.integers(16, 71, n_users).astype(np.float64)
    band = np.digitize(age, _AGE_EDGES)
    female = rng.random(n_users) < 0.5
    user_tags = _tag_lists(rng, np.ones((n_users, _NUM_TAGS), np.int8), rng.integers(1, 4, n_users))
    user_lat = rng.normal(0.0, 0.6, (n_users, _LATENT_DIM))
    user_bias = rng.normal(0.0, 0.3, n_users)
    activity = rng.lognormal(0.0, 0.8, n_users)

    # Items: each category draws its tags from 4 related tags, its price around its own level.
    category = rng.integers(0, _NUM_CATEGORIES, n_items)
    category_tags = np.zeros((_NUM_CATEGORIES, _NUM_TAGS), np.int8)
    for c in range(_NUM_CATEGORIES):
        category_tags[c, rng.choice(_NUM_TAGS, 4, replace=False)] = 1
    item_tags = _tag_lists(rng, category_tags[category], rng.integers(1, 4, n_items))
    log_price = rng.uniform(np.log(5.0), np.log(200.0), _NUM_CATEGORIES)[category]
    price = np.round(np.exp(log_price + rng.normal(0.0, 0.5, n_items)), 2).clip(0.5, 500.0)
    item_lat = rng.normal(0.0, 0.6, (n_items, _LATENT_DIM))
    item_bias = rng.normal(0.0, 0.3, n_items)
    popularity = rng.lognormal(0.0, 0.8, n_items)

    # Interaction tables.
    band_category = rng.normal(0.0, 0.7, (len(_AGE_EDGES) + 1, _NUM_CATEGORIES))
    sweet_spot = rng.uniform(np.log(5.0), np.log(200.0), (2, len(_AGE_EDGES) + 1))

    # Impressions.
    u = rng.choice(n_users, rows, p=activity / activity.sum())
    i = rng.choice(n_items, rows, p=popularity / popularity.sum())
    affinity = np.einsum("nd,nd->n", user_lat[u], item_lat[i])
    tag_match = (user_tags[u] & item_tags[i]).any(axis=1)
    logit = (_BASE_LOGIT + user_bias[u] + item_bias[i] + affinity + 1.2 * tag_match
             + band_category[band[u], category[i]]
             - 0.25 * (np.log(price[i]) - sweet_spot[female[u].astype(int), band[u]]) ** 2)
    # The previous ranker's relevance, centred so that every slot is about equally common.
    relevance = affinity + 1.2 * tag_match
    relevance = np.tanh(relevance - np.median(relevance))
    slot_logits = -_RANKER_SHARPNESS * np.arange(_NUM_SLOTS) * relevance[:, None]
    slot_prob = np.exp(slot_logits - slot_logits.max(axis=1, keepdims=True))
    slot_prob /= slot_prob.sum(axis=1, keepdims=True)
    position = (rng.random(rows)[:, None] > np.cumsum(slot_prob, axis=1)).sum(axis=1)
    position = np.minimum(position, _NUM_SLOTS - 1)
    click_prob = _sigmoid(logit + _POSITION_BIAS[position])
    click_prob_without = (slot_prob * _sigmoid(logit[:, None] + _POSITION_BIAS[None, :])).sum(axis=1)
    clk = (rng.random(rows) < click_prob).astype(np.int32)
    seen = rng.poisson(_HISTORY_IMPRESSIONS, rows)
    clicked = rng.binomial(seen, click_prob_without)
    user_item_ctr = ((clicked + _PRIOR_IMPRESSIONS * click_prob_without.mean())
                     / (seen + _PRIOR_IMPRESSIONS))

    columns = {
        USER_ID: np.array([f"u{x}" for x in u], dtype=object),
        AGE: age[u],
        GENDER: np.where(female, "F", "M").astype(object)[u],
        INTERESTS: _tag_strings("t", user_tags)[u],
        ITEM_ID: np.array([f"i{x}" for x in i], dtype=object),
        CATEGORY: np.array([f"c{x}" for x in range(_NUM_CATEGORIES)], dtype=object)[category[i]],
        PRICE: price[i],
        ITEM_TAGS: _tag_strings("t", item_tags)[i],
        USER_ITEM_CTR: np.round(user_item_ctr, 4),
        POSITION: position.astype(np.int64),
        LABEL: clk,
    }
    n_train = rows - max(1, round(rows * eval_fraction))
    return GeneratedSample(columns=columns, n_train=n_train, click_prob=click_prob,
                           click_prob_without_privileged=click_prob_without)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_sample_data(out_dir: str, *, rows: int = DEFAULT_ROWS, eval_fraction: float = 0.2,
                      seed: int = 0, overwrite: bool = False) -> SampleData:
    """Writes the synthetic sample (see ``generate_sample``) and its three configs to ``out_dir``.

    Args:
        out_dir: local folder, created if missing.
        rows: total impressions; the default (40,000 train / 10,000 eval) trains in seconds.
        eval_fraction: the last fraction of rows (by time) that form eval.csv.
        seed: the same seed writes byte-identical files.
        overwrite: replace files of other content (see ``write_dataset``).

    Returns:
        The written paths.
    """
    sample = generate_sample(rows, eval_fraction=eval_fraction, seed=seed)
    return write_dataset(out_dir, SAMPLE_FEATURES, sample.split("train"), sample.split("eval"),
                         batch_size=256, overwrite=overwrite)
