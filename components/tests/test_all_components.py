"""Properties every component folder shares: documented, image-bound, README current."""

import pytest

from components import readme

NAMES = readme.component_names()


def test_every_step_has_a_component_folder():
    assert NAMES == ["cross_fit_folds", "current_champion", "evaluate", "fold_teacher_uris",
                     "generate_soft_labels", "prepare_sweep", "prepare_teacher", "push_model",
                     "resolve_data_uris", "select_candidate", "teacher_placement",
                     "train_fold_teacher", "train_model"]


@pytest.mark.parametrize("name", NAMES)
def test_every_input_and_output_is_described_in_the_docstring(name):
    spec = readme.load_component(name).component_spec
    described = readme.describe(readme.load_component(name))
    io = set(spec.inputs or {}) | set(spec.outputs or {})
    assert io <= set(described), f"undocumented: {sorted(io - set(described))}"


@pytest.mark.parametrize("name", NAMES)
def test_component_skips_installing_kfp_and_runs_in_a_project_image(name):
    container = readme.load_component(name).component_spec.implementation.container
    assert container.image.startswith("ghcr.io/recdistill/")
    assert "pip install" not in " ".join(container.command)


@pytest.mark.parametrize("name", NAMES)
def test_component_has_its_own_unit_tests(name):
    assert (readme.HERE / name / "tests" / "test_component_unit.py").is_file()


def test_every_readme_is_generated_from_the_current_docstring():
    stale = readme.stale_readmes(write=False)
    assert not stale, f"stale: {[str(p) for p in stale]}; run `python -m components.readme`"


def test_readme_lists_inputs_with_defaults_and_described_outputs():
    text = readme.render(readme.load_component("generate_soft_labels"))
    assert text.startswith("# `generate-soft-labels`")
    assert "| `runner` | String | `'DirectRunner'` | Beam runner:" in text
    assert "| `stats` | Metrics | rows read, written and rejected" in text
    assert "Args:" not in text
