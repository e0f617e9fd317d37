"""kd variants: overrides of the kd blocks' loss_weight, temperature and loss_type.

A kd sweep trains the student as configured and one student per variant, then picks on a
validation split (``recdistill.selection``). A variant is a JSON object such as
``{"loss_weight": 0.5}`` or ``{"temperature": 2, "loss_type": "KL_DIVERGENCE_LOSS"}``.

It applies to every kd block of the config, because most configs have one block and a sweep
asks "how much kd, how soft" of the whole student. ``"kd_block"`` names one block by its
``soft_label_name`` to override only that one (a multi-teacher config).

Variants are checked against the config when they are loaded, before anything trains: an
unknown field, a value of the wrong type, a block that does not exist or a block the override
makes invalid (``recdistill.kd.params.block_problems``) fails naming the variant and field.
"""

import json
from typing import Mapping, Sequence

from recdistill.kd import params as kd_params
from recdistill.protos import pipeline_pb2

#: Overridable fields of a kd block.
FIELDS = ("loss_weight", "temperature", "loss_type")
#: The optional key naming the one block a variant overrides (its soft_label_name).
BLOCK_KEY = "kd_block"
#: Name of the kd student as configured; variant ``i`` (1-based) is ``kd_v<i>``.
CONFIGURED = "kd"


def variant_name(index: int) -> str:
    """The candidate name of the ``index``-th variant (0-based): ``kd_v1``, ``kd_v2``, ..."""
    return f"{CONFIGURED}_v{index + 1}"


def parse_variants(value) -> list:
    """The variants of ``value``: a JSON text (a list of objects), a list, or ''/None (none).

    Raises:
      ValueError: not a JSON list of objects (the message shows what was given).
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"kd variants must be a JSON list of objects, e.g. "
                             f"'[{{\"loss_weight\": 0.5}}]'; got {value[:200]!r} ({error}).") \
                from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or \
            not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"kd variants must be a list of objects, e.g. [{{\"loss_weight\": "
                         f"0.5}}]; got {value!r}.")
    return [dict(v) for v in value]


def apply_variant(cfg, overrides: Mapping, name: str = "variant"):
    """A copy of ``cfg`` whose kd blocks carry ``overrides`` (the config itself is unchanged).

    Args:
      cfg: a loaded EasyRecConfig with kd blocks.
      overrides: ``{"loss_weight"?, "temperature"?, "loss_type"?, "kd_block"?}``.
      name: the variant's name for error messages (``kd_v2``).

    Raises:
      ValueError: the config has no kd block, an unknown field, a value of the wrong type or
        range, or ``kd_block`` names no block; one line per problem, naming variant and field.
    """
    problems = []
    unknown = sorted(set(overrides) - set(FIELDS) - {BLOCK_KEY})
    if unknown:
        problems.append(f"unknown field(s) {unknown}; a variant may set {', '.join(FIELDS)} "
                        f"and '{BLOCK_KEY}' (a block's soft_label_name)")
    blocks = list(cfg.model_config.kd)
    if not blocks:
        problems.append("the student config has no kd block to override; add model_config.kd "
                        "or drop the variants")
    target = overrides.get(BLOCK_KEY)
    names = [b.soft_label_name for b in blocks]
    if target is not None and target not in names:
        problems.append(f"{BLOCK_KEY} is {target!r}, not a kd block's soft_label_name "
                        f"(blocks: {names})")
    values = {}
    for field in ("loss_weight", "temperature"):
        if field in overrides:
            value = overrides[field]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{field} must be a number, got {value!r}")
            else:
                values[field] = float(value)
    if "loss_type" in overrides:
        value = overrides["loss_type"]
        if value not in kd_params.KD_LOSS_TYPES:
            problems.append(f"loss_type must be one of {', '.join(kd_params.KD_LOSS_TYPES)}, "
                            f"got {value!r}")
        else:
            values["loss_type"] = pipeline_pb2.LossType.Value(value)
    if not problems:
        out = pipeline_pb2.EasyRecConfig()
        out.CopyFrom(cfg)
        for i, block in enumerate(out.model_config.kd):
            if target is not None and block.soft_label_name != target:
                continue
            for field, value in values.items():
                setattr(block, field, value)
            if "temperature" in values and \
                    kd_params.kd_grouping(block.loss_type) != kd_params.POINTWISE:
                problems.append(f"temperature overrides kd[{i}].temperature, which a "
                                f"{pipeline_pb2.LossType.Name(block.loss_type)} block ignores "
                                "(its loss_param has its own); sweep loss_weight, or use a "
                                "pointwise loss_type")
            problems += [f"makes kd[{i}].{p.field} {p.problem}, got {p.got}. {p.fix}"
                         for p in kd_params.block_problems(block)]
    if problems:
        raise ValueError("\n".join(f"kd variant {name} {overrides!r}: {p}." for p in problems))
    return out


def candidates(cfg, variants: Sequence[Mapping]) -> list:
    """The kd candidates of a sweep: the student as configured, then every variant.

    Each variant is applied to ``cfg`` once here, so a bad one fails before anything trains.

    Returns:
      ``[{"name": "kd", "overrides": {}}, {"name": "kd_v1", "overrides": {...}}, ...]``.
    """
    out = [{"name": CONFIGURED, "overrides": {}}]
    for i, overrides in enumerate(variants):
        apply_variant(cfg, overrides, variant_name(i))
        out.append({"name": variant_name(i), "overrides": dict(overrides)})
    return out
