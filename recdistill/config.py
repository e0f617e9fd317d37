"""The pipeline config: EasyRec's protobuf text format, loaded, validated and resolved.

This module owns reading a config (``load_config``) and the few accessors every other module
needs (features, labels, soft labels, input fields). The schema lives in
``recdistill/protos/pipeline.proto`` with EasyRec's field names, so an EasyRec config loads
unchanged: fields EasyRec has but recdistill ignores are marked ``[(unused) = true]`` and
produce one warning; a field EasyRec does not have is a parse error.

Every semantic problem is collected and reported at once in one :class:`ConfigError`, each as
``<file>:<line>: <field path> <problem>, got <value>. <fix>.`` so a user fixes a config in one
round. It must import nothing from recdistill except ``recdistill.protos`` and
``recdistill.kd.params`` (kd's rules, TensorFlow-free; the file layer is imported lazily, only
to read ``gs://`` configs).
"""

import collections
import logging
import os
import posixpath
import re
from typing import Iterator, NamedTuple

from google.protobuf import descriptor, text_format

from recdistill.kd import params as kd_params
from recdistill.protos import pipeline_pb2

logger = logging.getLogger(__name__)

TEXT_NAME = "<text>"
"""The file name errors use when ``load_config`` was given config text instead of a path."""

MODEL_CLASSES = {"DSSM": "dssm", "DCN": "dcn", "DeepFM": "deepfm", "GBDT": "gbdt"}
"""Each model_class recdistill trains, mapped to the ``model_config`` oneof block it needs."""

DSSM_DEFAULT_GROUPS = {"user_tower": "user", "item_tower": "item"}
"""EasyRec's DSSM always reads the feature groups 'user' and 'item'; tower ``id`` is a name."""

_PATH_FIELDS = ("train_input_path", "eval_input_path", "model_dir")
_EMBEDDED_TYPES = ("IdFeature", "TagFeature")
_SCHEMA = "recdistill/protos/pipeline.proto"


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Problem(NamedTuple):
    path: str
    problem: str
    got: str
    fix: str


# ---------------------------------------------------------------- public API


def load_config(path_or_text) -> pipeline_pb2.EasyRecConfig:
    """Reads, validates and resolves an EasyRec pipeline config.

    Args:
      path_or_text: a local path or ``gs://`` URI of a ``.config`` file, or the config text
        itself (then errors name the file ``<text>`` and relative paths resolve against the
        current directory).

    Returns:
      The parsed ``EasyRecConfig`` with train_input_path, eval_input_path, model_dir and every
      feature's vocab_file made absolute against the config file's folder (``gs://`` and other
      URIs, and absolute paths, are left alone).

    Raises:
      ConfigError: the text does not parse (one line naming file, line and field) or fails
        validation (one line per problem, all of them).
      FileNotFoundError: the argument looks like a path (one line, no ``:`` or ``{``) but no
        such file exists.
    """
    text, name, base_dir = _read(path_or_text)
    cfg = _parse(text, name)
    _warn_unused(cfg, name)
    problems = list(_validate(cfg))
    if problems:
        lines = _field_lines(text)
        raise ConfigError([_format(name, lines, p) for p in problems])
    _resolve_paths(cfg, base_dir)
    logger.info("Loaded config %s: model_class %s, %d features, %d kd blocks", name,
                cfg.model_config.model_class, len(all_features(cfg)), len(cfg.model_config.kd))
    return cfg


def all_features(cfg) -> list:
    """Every FeatureConfig, from both EasyRec spellings: ``feature_configs`` and ``feature_config.features``."""
    return [fc for _, fc in _features_with_paths(cfg)]


def feature_name(fc) -> str:
    """The name feature groups use for a feature: ``feature_name``, else its first input name.

    Raises:
      ValueError: the feature has neither (load_config rejects such configs).
    """
    if fc.feature_name:
        return fc.feature_name
    if fc.input_names:
        return fc.input_names[0]
    raise ValueError("feature has neither feature_name nor input_names; set input_names to the "
                     "input field it reads")


def label_fields(cfg) -> list[str]:
    """The input fields ``data_config.label_fields`` names (hard labels and soft labels alike)."""
    return list(cfg.data_config.label_fields)


def soft_label_fields(cfg) -> list[str]:
    """Each kd block's soft_label_name, in block order, each once (blocks may share a soft label)."""
    return list(dict.fromkeys(kd.soft_label_name for kd in cfg.model_config.kd))


def hard_label_fields(cfg) -> list[str]:
    """The label fields that are not kd soft labels (the clicks, conversions, ...), in order."""
    soft = set(soft_label_fields(cfg))
    return [name for name in label_fields(cfg) if name not in soft]


def input_field(cfg, name: str):
    """The ``data_config.input_fields`` entry named ``name``.

    Raises:
      ValueError: no input field has that name; the message lists the valid ones.
    """
    for field in cfg.data_config.input_fields:
        if field.input_name == name:
            return field
    raise ValueError(f"data_config.input_fields has no field {name!r}; valid: "
                     f"{', '.join(_input_names(cfg))}. Add an input_fields entry for it.")


def dssm_tower_group(cfg, tower: str) -> str:
    """The feature group a DSSM tower reads: its ``id`` when that names a group, else EasyRec's default.

    EasyRec's DSSM hard-codes the groups 'user' and 'item' and treats ``user_tower.id`` /
    ``item_tower.id`` as a plain name (its sample sets ``id: "user_id"``), while recdistill lets
    ``id`` pick the group. Accepting both keeps EasyRec configs loading unchanged.

    Args:
      cfg: a loaded config with a ``dssm`` block.
      tower: "user_tower" or "item_tower".
    """
    tower_id = getattr(cfg.model_config.dssm, tower).id
    groups = _group_names(cfg)
    return tower_id if tower_id in groups else DSSM_DEFAULT_GROUPS[tower]


def without_kd(cfg):
    """A copy of ``cfg`` without kd: no kd blocks, no soft-label input or label fields.

    The baseline student trained beside the distilled one reads the raw training table (which
    has no soft-label columns), so the fields go too, not only the kd blocks.
    """
    soft = set(soft_label_fields(cfg))
    plain = pipeline_pb2.EasyRecConfig()
    plain.CopyFrom(cfg)
    plain.model_config.ClearField("kd")
    kept_fields = [f for f in plain.data_config.input_fields if f.input_name not in soft]
    kept_labels = [name for name in plain.data_config.label_fields if name not in soft]
    plain.data_config.ClearField("input_fields")
    plain.data_config.input_fields.extend(kept_fields)
    plain.data_config.ClearField("label_fields")
    plain.data_config.label_fields.extend(kept_labels)
    return plain


def to_text(cfg) -> str:
    """The config in protobuf text format; ``load_config(to_text(cfg))`` gives ``cfg`` back."""
    return text_format.MessageToString(cfg)


# ---------------------------------------------------------------- reading and parsing


def _read(path_or_text) -> tuple[str, str, str]:
    """Returns (text, name for errors, folder relative paths resolve against)."""
    value = os.fspath(path_or_text)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if value.startswith(("gs://", "s3://", "minio://")):
        from recdistill.data import filesystems  # lazy: config must not need the file layer

        with filesystems.open_input(value) as f:
            data = f.read()
        return _decode(data, value), value, posixpath.dirname(value)
    if os.path.isfile(value):
        with open(value, "rb") as f:
            return _decode(f.read(), value), value, os.path.dirname(os.path.abspath(value))
    if _looks_like_path(value):
        raise FileNotFoundError(f"{value}: no such config file. Pass an existing path or the "
                                f"config text itself.")
    return value, TEXT_NAME, os.getcwd()


def _looks_like_path(value: str) -> bool:
    """One line that is no config text: no ':', '{', '<', or one token (``/a/b:c.config``)."""
    token = value.strip()
    if not token or "\n" in value:
        return False
    return not any(c in value for c in ":{<") or not any(c in token for c in "{<\"' \t")


def _decode(data, name: str) -> str:
    """The text of a config file; binary content (a serialized proto, a gzip) is refused."""
    if isinstance(data, str):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        offset = e.start
    else:
        if "\0" not in text:
            return text
        offset = text.index("\0")
    raise ConfigError([f"{name}: not a text config (binary byte at offset {offset}). Pass the "
                       f"config in protobuf text format ({_SCHEMA}), e.g. the sample's "
                       "student.config."])


def _parse(text: str, name: str):
    cfg = pipeline_pb2.EasyRecConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as e:
        raise ConfigError([_parse_error_line(text, name, e)]) from None
    return cfg


def _parse_error_line(text: str, name: str, error: text_format.ParseError) -> str:
    """Turns text_format's ``line:col : message`` into ``<file>:<line>: <field path>: message fix``."""
    line, col = error.GetLine() or 1, error.GetColumn() or 1
    message = re.sub(r"^\d+:\d+ : ", "", str(error))
    source_line = text.split("\n")[line - 1] if line <= text.count("\n") + 1 else ""
    message = message.removeprefix(f"'{source_line}': ")
    before = [entry for entry in _walk_fields(text) if (entry.line, entry.col) <= (line, col)]
    if not before:
        return f"{name}:{line}: {message} Check the syntax against {_SCHEMA}."
    entry = before[-1]
    if entry.field is None:
        valid = ", ".join(f.name for f in entry.scope.fields)
        fix = f"Valid fields of {entry.scope.name}: {valid}."
    elif entry.field.enum_type is not None:
        fix = f"Valid values: {', '.join(v.name for v in entry.field.enum_type.values)}."
    else:
        fix = f"Check the value's type against {_SCHEMA}."
    return f"{name}:{line}: {entry.path}: {message} {fix}"


class _FieldEntry(NamedTuple):
    line: int
    col: int
    path: str
    field: object  # FieldDescriptor, or None for a name the scope does not have
    scope: object  # Descriptor of the message holding the field


def _walk_fields(text: str) -> list[_FieldEntry]:
    """Lists every field occurrence in config text with its 1-based position and field path.

    text_format keeps no positions, so this re-reads the text with its Tokenizer, tracking
    ``name {`` / ``name <`` / ``}`` nesting, ``name: value`` and ``name: [v, ...]``, and counts
    occurrences of repeated fields to build paths like ``model_config.kd[1].temperature``.
    It stops quietly at text that does not tokenize (the parser reports that).
    """
    tok = text_format.Tokenizer(text.split("\n"))
    entries = []

    def value(field, path):
        if tok.token in ("{", "<"):
            close = "}" if tok.token == "{" else ">"
            tok.NextToken()
            message(field.message_type if field is not None and field.message_type else None,
                    path + ".")
            tok.TryConsume(close)
            return
        tok.TryConsume("-")
        tok.NextToken()
        while tok.token[:1] in ("'", '"'):  # adjacent strings concatenate
            tok.NextToken()

    def message(scope, prefix):
        counts = collections.Counter()
        while not tok.AtEnd() and tok.token not in ("}", ">"):
            line, col, name = tok._line + 1, tok._column + 1, tok.token
            tok.NextToken()
            field = scope.fields_by_name.get(name) if scope is not None else None
            repeated = field is not None and field.label == descriptor.FieldDescriptor.LABEL_REPEATED

            def next_path():
                if not repeated:
                    return prefix + name
                counts[name] += 1
                return f"{prefix}{name}[{counts[name] - 1}]"

            tok.TryConsume(":")
            if tok.TryConsume("["):
                entries.append(_FieldEntry(line, col, prefix + name, field, scope))
                while not tok.AtEnd() and not tok.TryConsume("]"):
                    path = next_path()
                    entries.append(_FieldEntry(tok._line + 1, tok._column + 1, path, field, scope))
                    value(field, path)
                    tok.TryConsume(",")
            else:
                path = next_path()
                entries.append(_FieldEntry(line, col, path, field, scope))
                value(field, path)
            if not tok.TryConsume(";"):
                tok.TryConsume(",")

    try:
        message(pipeline_pb2.EasyRecConfig.DESCRIPTOR, "")
    except text_format.ParseError:
        pass
    return entries


def _field_lines(text: str) -> dict[str, int]:
    """Maps each field path in the text to the line it first appears on."""
    lines = {}
    for entry in _walk_fields(text):
        lines.setdefault(entry.path, entry.line)
    return lines


def _format(name: str, lines: dict[str, int], p: _Problem) -> str:
    """One problem as ``<file>:<line>: <path> <problem>, got <value>. <fix>.``.

    A field that is not in the text (a missing required value) takes the line of its nearest
    enclosing block that is; a problem with nothing in the text points at line 1.
    """
    path = p.path
    while path and path not in lines:
        path = re.sub(r"(\[\d+\]|\.?[^.\[]*)$", "", path)
    return f"{name}:{lines.get(path, 1)}: {p.path} {p.problem}, got {p.got}. {p.fix}."


# ---------------------------------------------------------------- unused fields and paths


def _unused_paths(msg, prefix: str = "") -> Iterator[str]:
    for field, value in msg.ListFields():
        if field.is_extension:
            continue
        path = prefix + field.name
        if field.GetOptions().Extensions[pipeline_pb2.unused]:
            yield path
        elif field.message_type is not None:
            if field.label == descriptor.FieldDescriptor.LABEL_REPEATED:
                for i, item in enumerate(value):
                    yield from _unused_paths(item, f"{path}[{i}].")
            else:
                yield from _unused_paths(value, path + ".")


def _warn_unused(cfg, name: str) -> None:
    """Logs one warning naming every set EasyRec field that recdistill ignores."""
    unused = list(_unused_paths(cfg))
    if unused:
        logger.warning("%s: recdistill ignores these EasyRec fields: %s", name, ", ".join(unused))


def _resolve(base_dir: str, value: str) -> str:
    if not value or "://" in value or os.path.isabs(value):
        return value
    if "://" in base_dir:
        scheme, rest = base_dir.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, value))}"
    return os.path.normpath(os.path.join(base_dir, value))


def _resolve_paths(cfg, base_dir: str) -> None:
    for field in _PATH_FIELDS:
        if cfg.HasField(field):
            setattr(cfg, field, _resolve(base_dir, getattr(cfg, field)))
    for fc in all_features(cfg):
        if fc.HasField("vocab_file"):
            fc.vocab_file = _resolve(base_dir, fc.vocab_file)


# ---------------------------------------------------------------- validation


def _show(value) -> str:
    """A value as a config would spell it: quoted strings, floats with a decimal point."""
    if value is None or value == "":
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = f"{value:.7g}"
        return text if any(c in text for c in ".eina") else text + ".0"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _choices(values) -> str:
    return ", ".join(values) if values else "(none)"


def _features_with_paths(cfg) -> list[tuple[str, object]]:
    pairs = [(f"feature_configs[{i}]", fc) for i, fc in enumerate(cfg.feature_configs)]
    pairs += [(f"feature_config.features[{i}]", fc)
              for i, fc in enumerate(cfg.feature_config.features)]
    return pairs


def _input_names(cfg) -> list[str]:
    return [f.input_name for f in cfg.data_config.input_fields]


def _group_names(cfg) -> list[str]:
    return [g.group_name for g in cfg.model_config.feature_groups]


def _validate(cfg) -> Iterator[_Problem]:
    yield from _check_model_class(cfg)
    yield from _check_data(cfg)
    yield from _check_features(cfg)
    yield from _check_feature_groups(cfg)
    yield from _check_towers(cfg)
    yield from _check_kd(cfg)
    yield from _check_train(cfg)


def _check_model_class(cfg) -> Iterator[_Problem]:
    model = cfg.model_config
    block = MODEL_CLASSES.get(model.model_class)
    if block is None:
        yield _Problem("model_config.model_class", f"must be one of {_choices(MODEL_CLASSES)}",
                       _show(model.model_class), "Set model_class to one recdistill trains")
    elif model.WhichOneof("model") != block:
        yield _Problem("model_config", f"needs a `{block} {{ ... }}` block for model_class "
                       f"'{model.model_class}'", _show(model.WhichOneof("model")),
                       f"Add `{block} {{ }}` or change model_class to match the block")


def _check_data(cfg) -> Iterator[_Problem]:
    data = cfg.data_config
    if data.batch_size <= 0:
        yield _Problem("data_config.batch_size", "must be > 0", _show(data.batch_size),
                       "Set a positive batch size, e.g. 1024")
    from recdistill.data import formats  # lazy, like filesystems: imports only the protos

    supported = formats.supported_input_types()
    input_type = pipeline_pb2.DatasetConfig.InputType.Name(data.input_type)
    if input_type not in supported:
        yield _Problem("data_config.input_type", "is not a format recdistill reads",
                       input_type, f"Use one of {_choices(supported)}")
    inputs = _input_names(cfg)
    if not data.label_fields:
        yield _Problem("data_config.label_fields", "must name at least one label", "nothing",
                       f"Add label_fields: ['<label>'] from the input fields: {_choices(inputs)}")
    for i, label in enumerate(data.label_fields):
        if label not in inputs:
            yield _Problem(f"data_config.label_fields[{i}]", "must name an input field",
                           _show(label), f"Valid input fields: {_choices(inputs)}")


def _check_features(cfg) -> Iterator[_Problem]:
    inputs = _input_names(cfg)
    seen = {}
    for path, fc in _features_with_paths(cfg):
        if not fc.input_names:
            yield _Problem(f"{path}.input_names", "must name at least one input field", "nothing",
                           f"Valid input fields: {_choices(inputs)}")
            continue
        for j, input_name in enumerate(fc.input_names):
            if input_name not in inputs:
                yield _Problem(f"{path}.input_names[{j}]", "must name an input field",
                               _show(input_name), f"Valid input fields: {_choices(inputs)}")
        name = feature_name(fc)
        if name in seen:
            yield _Problem(path, f"repeats the feature name used by {seen[name]}", _show(name),
                           "Give each feature a unique feature_name")
        seen.setdefault(name, path)
        yield from _check_feature_values(path, fc)


def _check_feature_values(path: str, fc) -> Iterator[_Problem]:
    kind = pipeline_pb2.FeatureConfig.FeatureType.Name(fc.feature_type)
    if kind in _EMBEDDED_TYPES:
        if not (fc.hash_bucket_size or fc.num_buckets or fc.vocab_list or fc.vocab_file):
            yield _Problem(path, f"({kind}) needs a vocabulary", "none",
                           "Set one of hash_bucket_size, num_buckets, vocab_list or vocab_file")
        if fc.embedding_dim <= 0:
            yield _Problem(f"{path}.embedding_dim", f"must be > 0 for a {kind}",
                           _show(fc.embedding_dim), "Set embedding_dim, e.g. 16")
    if kind == "RawFeature":
        bounds = list(fc.boundaries)
        if any(b >= a for b, a in zip(bounds, bounds[1:])):
            yield _Problem(f"{path}.boundaries", "must be strictly increasing",
                           "[" + ", ".join(_show(b) for b in bounds) + "]",
                           "Sort the boundaries and drop duplicates")


def _check_feature_groups(cfg) -> Iterator[_Problem]:
    names = [feature_name(fc) for fc in all_features(cfg) if fc.feature_name or fc.input_names]
    for i, group in enumerate(cfg.model_config.feature_groups):
        for j, name in enumerate(group.feature_names):
            if name not in names:
                yield _Problem(f"model_config.feature_groups[{i}].feature_names[{j}]",
                               "must name a feature", _show(name),
                               f"Valid features: {_choices(names)}")


def _check_towers(cfg) -> Iterator[_Problem]:
    model = cfg.model_config
    groups = _group_names(cfg)
    valid = f"Valid feature groups: {_choices(groups)}"
    kind = model.WhichOneof("model")
    if kind == "dssm":
        for tower, default in DSSM_DEFAULT_GROUPS.items():
            tower_id = getattr(model.dssm, tower).id
            if tower_id not in groups and default not in groups:
                yield _Problem(f"model_config.dssm.{tower}.id",
                               f"must name a feature group (or a group '{default}' must exist, "
                               f"as EasyRec's DSSM reads)", _show(tower_id), valid)
    elif kind == "dcn":
        for tower in ("deep_tower", "cross_tower"):
            tower_input = getattr(model.dcn, tower).input
            if tower_input not in groups:
                yield _Problem(f"model_config.dcn.{tower}.input", "must name a feature group",
                               _show(tower_input), valid)
    labels = label_fields(cfg)
    for i, task in enumerate(model.task_towers):
        if task.label_name not in labels:
            yield _Problem(f"model_config.task_towers[{i}].label_name", "must be a label field",
                           _show(task.label_name), f"Valid label_fields: {_choices(labels)}")


def _check_kd(cfg) -> Iterator[_Problem]:
    labels = label_fields(cfg)
    for i, kd in enumerate(cfg.model_config.kd):
        path = f"model_config.kd[{i}]"
        if not kd.pred_name:
            yield _Problem(f"{path}.pred_name", "is required", "nothing",
                           "Name the student prediction to distill, e.g. 'logits'")
        if not kd.soft_label_name:
            yield _Problem(f"{path}.soft_label_name", "is required", "nothing",
                           "Name the label field holding the teacher's prediction")
        elif kd.soft_label_name not in labels:
            yield _Problem(f"{path}.soft_label_name", "must be one of data_config.label_fields",
                           _show(kd.soft_label_name),
                           f"Valid: {_choices(labels)}; add it to label_fields")
        for problem in kd_params.block_problems(kd, _input_names(cfg)):
            yield _Problem(f"{path}.{problem.field}", problem.problem, problem.got, problem.fix)


def _check_train(cfg) -> Iterator[_Problem]:
    optimizers = cfg.train_config.optimizer_config
    if len(optimizers) > 1:
        yield _Problem("train_config.optimizer_config[1]", "is not supported: recdistill trains "
                       "with one optimizer", f"{len(optimizers)} optimizer_config blocks",
                       "Keep a single optimizer_config")
    for i, optimizer in enumerate(optimizers):
        path = f"train_config.optimizer_config[{i}]"
        if optimizer.WhichOneof("optimizer") != "adam_optimizer":
            yield _Problem(path, "must set adam_optimizer", "nothing",
                           "Add adam_optimizer { learning_rate { constant_learning_rate { } } }")
        elif optimizer.adam_optimizer.learning_rate.WhichOneof("learning_rate") is None:
            yield _Problem(f"{path}.adam_optimizer.learning_rate",
                           "must set constant_learning_rate or exponential_decay_learning_rate",
                           "nothing", "Add constant_learning_rate { learning_rate: 0.001 }")
