"""Tests of the one home of "the user/session key": recdistill.user_key.

GAUC's uid_field, else a kd block's session_name, names the column that groups a user's (or
session's) rows; evaluation (GAUC, consistency metrics), cross-fitting (folds) and the
validation holdout (selection) all read it from here, so they never disagree on a config.
"""

import pytest

from recdistill import cross_fit, evaluation, selection
from recdistill.config import load_config

import toy_models

GAUC = 'metrics_set { gauc { uid_field: "user_id" reduction: "mean" } }'
LISTWISE = ('kd { pred_name: "logits" soft_label_name: "kd_soft" loss_type: '
            'LISTWISE_DISTILL_LOSS listwise_distill_loss { session_name: "z" } }')


def _config(*, gauc: str = GAUC, kd: bool = False, listwise: bool = False,
            hard_label: bool = True):
    text = toy_models.config_text(
        teacher_pred_name="probs" if kd or listwise or not hard_label else None)
    text = text.replace(GAUC, gauc)
    if listwise:
        text = text.replace(toy_models.KD_BLOCK % "probs", LISTWISE)
    if not hard_label:
        text = text.replace('label_fields: "clk"\n', "")
    return load_config(text)


BOTH_GAUC = GAUC + ' metrics_set { gauc { uid_field: "x" reduction: "mean" } }'
EMPTY_GAUC = 'metrics_set { gauc { uid_field: "" reduction: "mean" } }'


def test_gauc_uid_field_comes_first_then_the_kd_session_name():
    assert evaluation.user_field(_config()) == "user_id"
    assert cross_fit.resolve_key(_config()) == "user_id"
    assert evaluation.user_field(_config(listwise=True)) == "user_id"
    assert evaluation.user_field(_config(gauc="", listwise=True)) == "z"
    assert cross_fit.resolve_key(_config(gauc="", listwise=True)) == "z"
    assert selection.split_key(_config(gauc="", listwise=True)) == "z"


def test_no_key_in_the_config():
    assert evaluation.user_field(_config(gauc="")) is None
    with pytest.raises(ValueError, match="cross_fit_key"):
        cross_fit.resolve_key(_config(gauc=""))
    with pytest.raises(ValueError, match="validation_key"):
        selection.split_key(_config(gauc=""))


def test_a_named_key_wins_and_cross_fit_checks_it_is_an_input_field():
    assert cross_fit.resolve_key(_config(), "x") == "x"
    assert selection.split_key(_config(), "x") == "x"
    with pytest.raises(ValueError, match="nope"):
        cross_fit.resolve_key(_config(), "nope")


# ---------------------------------------------------------------- edge cases (pinned before one home)


def test_edge_cases_before_one_home():
    # several gauc metrics: evaluation took the last, cross_fit the first
    assert evaluation.user_field(_config(gauc=BOTH_GAUC)) == "x"
    assert cross_fit.resolve_key(_config(gauc=BOTH_GAUC)) == "user_id"
    # an empty uid_field: evaluation refused, cross_fit fell through to the session name
    with pytest.raises(ValueError, match="uid_field is empty"):
        evaluation.user_field(_config(gauc=EMPTY_GAUC, listwise=True))
    assert cross_fit.resolve_key(_config(gauc=EMPTY_GAUC, listwise=True)) == "z"
    # no hard label: evaluation refused (it looked for the label first), cross_fit did not care
    no_label = _config(hard_label=False)
    with pytest.raises(ValueError, match="no hard label"):
        evaluation.user_field(no_label)
    assert cross_fit.resolve_key(no_label) == "user_id"
