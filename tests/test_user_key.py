"""Tests of the one home of "the user/session key": recdistill.user_key.

GAUC's uid_field, else a kd block's session_name, names the column that groups a user's (or
session's) rows; evaluation (GAUC, consistency metrics), cross-fitting (folds) and the
validation holdout (selection) all read it from here, so they never disagree on a config.
"""

import pytest

from recdistill import cross_fit, evaluation, selection, user_key
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
    assert user_key.user_field(_config()) == "user_id"
    assert cross_fit.resolve_key(_config()) == "user_id"
    assert user_key.user_field(_config(listwise=True)) == "user_id"
    assert user_key.user_field(_config(gauc="", listwise=True)) == "z"
    assert cross_fit.resolve_key(_config(gauc="", listwise=True)) == "z"
    assert selection.split_key(_config(gauc="", listwise=True)) == "z"


def test_no_key_in_the_config():
    assert user_key.user_field(_config(gauc="")) is None
    with pytest.raises(ValueError, match="cross_fit_key"):
        cross_fit.resolve_key(_config(gauc=""))
    with pytest.raises(ValueError, match="validation_key"):
        selection.split_key(_config(gauc=""))


def test_a_named_key_wins_and_cross_fit_checks_it_is_an_input_field():
    assert cross_fit.resolve_key(_config(), "x") == "x"
    assert selection.split_key(_config(), "x") == "x"
    with pytest.raises(ValueError, match="nope"):
        cross_fit.resolve_key(_config(), "nope")


# ---------------------------------------------------------------- edge cases, one rule
# Before one home: several gauc metrics gave evaluation the last and cross_fit the first; an
# empty uid_field failed evaluation but let cross_fit fall through to the session name; a
# config without a hard label had no user key for selection (evaluation looked for the label
# first) but one for cross_fit.


def _every_reader(cfg):
    return {"user_key": user_key.user_field(cfg), "cross_fit": cross_fit.resolve_key(cfg),
            "selection": selection.split_key(cfg), "gauc": evaluation._target(cfg).uid_field}


def test_several_gauc_metrics_the_first_counts_everywhere():
    assert set(_every_reader(_config(gauc=BOTH_GAUC)).values()) == {"user_id"}


def test_an_empty_uid_field_is_refused_everywhere():
    cfg = _config(gauc=EMPTY_GAUC, listwise=True)
    for read in (user_key.user_field, cross_fit.resolve_key, selection.split_key,
                 evaluation._target):
        with pytest.raises(ValueError, match="gauc.uid_field is empty"):
            read(cfg)


def test_the_key_does_not_need_a_hard_label():
    no_label = _config(hard_label=False)
    assert user_key.user_field(no_label) == "user_id"
    assert cross_fit.resolve_key(no_label) == selection.split_key(no_label) == "user_id"
    with pytest.raises(ValueError, match="no hard label"):  # evaluation's own need
        evaluation._target(no_label)


def test_sessions_come_from_a_kd_block_session_name_when_the_proto_has_loss_param():
    # Stand-ins for KD blocks of the proto with EasyRec's loss_param oneof (issue 12.1).
    from types import SimpleNamespace

    class Block:
        DESCRIPTOR = SimpleNamespace(oneofs_by_name={"loss_param": object()})

        def __init__(self, which, session):
            self.which = which
            if which:
                setattr(self, which, SimpleNamespace(session_name=session))

        def WhichOneof(self, name):
            assert name == "loss_param"
            return self.which

    def config(*blocks):
        return SimpleNamespace(model_config=SimpleNamespace(kd=list(blocks)))

    pointwise, listwise = Block(None, ""), Block("listwise_distill_loss", "request_id")
    assert user_key.kd_session_name(config(pointwise, listwise)) == "request_id"
    assert user_key.kd_session_name(config(pointwise)) is None
    assert user_key.kd_session_name(_config(kd=True)) is None
    assert user_key.kd_session_name(_config(listwise=True)) == "z"
    assert evaluation._target(_config(listwise=True)).session_field == "z"
