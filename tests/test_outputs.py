"""Output names: logits/probs kinds, task suffixes and twins, parsed in one place."""

import pytest

from recdistill import outputs


@pytest.mark.parametrize("name,kind,suffix", [
    ("logits", "logits", ""), ("logits_ctr", "logits", "_ctr"), ("probs", "probs", ""),
    ("probs_cvr", "probs", "_cvr"), ("probs_a_b", "probs", "_a_b")])
def test_kind_and_suffix_of_head_outputs(name, kind, suffix):
    assert outputs.kind(name) == kind
    assert outputs.task_suffix(name) == suffix
    assert outputs.is_logits(name) == (kind == "logits")
    assert outputs.is_probs(name) == (kind == "probs")
    assert outputs.output_name(kind, suffix) == name


@pytest.mark.parametrize("name", ["logitsx", "probability", "y", "user_tower_emb", "LOGITS"])
def test_other_names_are_raw(name):
    assert outputs.kind(name) is None
    assert not outputs.is_logits(name) and not outputs.is_probs(name)
    assert outputs.probability_first(name) == (name,)
    with pytest.raises(ValueError, match=f"{name!r} is neither logits"):
        outputs.task_suffix(name)


def test_twins_keep_the_task_suffix():
    assert outputs.probs_name("logits_ctr") == "probs_ctr"
    assert outputs.logits_name("probs") == "logits"
    assert outputs.probability_first("logits_cvr") == ("probs_cvr", "logits_cvr")
    assert outputs.probability_first("probs") == ("probs", "logits")
    with pytest.raises(ValueError, match="'probs_ctr' is not a logits"):
        outputs.probs_name("probs_ctr")
    with pytest.raises(ValueError, match="'emb' is not a probs"):
        outputs.logits_name("emb")
    with pytest.raises(ValueError, match="output kind must be one of"):
        outputs.output_name("score")


def test_unpaired_lists_heads_missing_their_twin():
    assert outputs.unpaired(["logits", "probs", "logits_ctr", "probs_ctr", "emb"]) == []
    assert outputs.unpaired(["logits", "probs_ctr", "emb"]) == ["logits", "probs_ctr"]
