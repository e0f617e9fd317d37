"""The compiled pipeline YAML: current, and carrying the settings production relies on."""

import re
import subprocess
import sys

import pytest
import yaml

from components.images import RUNTIME_IMAGE, TRAINER_IMAGE
from pipelines.compile import DEFAULT_OUTPUT, compile_pipeline

TRAINING_TASKS = ("prepare-teacher", "train-model")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    path = tmp_path_factory.mktemp("compiled") / "kd_pipeline.yaml"
    compile_pipeline(path)
    return path


@pytest.fixture(scope="module")
def spec(fresh):
    return list(yaml.safe_load_all(fresh.read_text()))


def _tasks(spec):
    return spec[0]["root"]["dag"]["tasks"]


def _all_tasks(spec):
    """Top-level tasks plus those inside dsl.If conditions and dsl.ParallelFor loops."""
    tasks = dict(_tasks(spec))
    for cond in [t for t in tasks.values()
                 if t["componentRef"]["name"].startswith(("comp-condition", "comp-for-loop"))]:
        tasks.update(spec[0]["components"][cond["componentRef"]["name"]]["dag"]["tasks"])
    return tasks


def _platform(spec, task_name):
    """The kfp-kubernetes settings (node selector, tolerations) of a task's executor."""
    component = spec[0]["components"][_all_tasks(spec)[task_name]["componentRef"]["name"]]
    return spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        component["executorLabel"]]


def _executor(spec, task_name):
    component = spec[0]["components"][_all_tasks(spec)[task_name]["componentRef"]["name"]]
    return spec[0]["deploymentSpec"]["executors"][component["executorLabel"]]


def test_committed_yaml_is_what_the_pipeline_compiles_to(fresh):
    assert DEFAULT_OUTPUT.read_text() == fresh.read_text(), (
        "pipelines/kd_pipeline.yaml is stale: run `recdistill compile` and commit it")


@pytest.mark.parametrize("task", TRAINING_TASKS)
def test_training_steps_request_gpus_cpu_and_memory_on_the_trainer_image(spec, task):
    container = _executor(spec, task)["container"]
    assert container["image"] == TRAINER_IMAGE
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert "trainer_cpu" in container["resources"]["resourceCpuRequest"]
    assert "trainer_memory" in container["resources"]["resourceMemoryRequest"]


@pytest.mark.parametrize("task", ("train-model",))
def test_students_get_one_gpu_on_the_gpu_nodes(spec, task):
    assert _executor(spec, task)["container"]["resources"]["accelerator"]["resourceCount"] == "1"
    config = _platform(spec, task)
    # inside the kd sweep's loop the parameters arrive as the loop's pipeline channels
    assert config["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"] in (
        "trainer_node_selector", "pipelinechannel--trainer_node_selector")
    assert config["tolerations"][0]["tolerationJson"]["componentInputParameter"] in (
        "trainer_tolerations", "pipelinechannel--trainer_tolerations")


def test_the_teacher_gets_a_gpu_and_gpu_node_only_when_it_is_trained(spec):
    """teacher-placement decides (0 GPUs and no node selector when teacher_uri is given)."""
    count = _executor(spec, "prepare-teacher")["container"]["resources"]["accelerator"][
        "resourceCount"]
    channel = re.fullmatch(r"\{\{\$\.inputs\.parameters\['(.+)'\]\}\}", count).group(1)
    teacher = _tasks(spec)["prepare-teacher"]
    assert teacher["inputs"]["parameters"][channel]["taskOutputParameter"] == {
        "outputParameterKey": "gpus", "producerTask": "teacher-placement"}
    assert _platform(spec, "prepare-teacher")["nodeSelector"]["nodeSelectorJson"] == {
        "taskOutputParameter": {"outputParameterKey": "node_selector",
                                "producerTask": "teacher-placement"}}
    placement = _tasks(spec)["teacher-placement"]["inputs"]["parameters"]
    assert placement["teacher_uri"] == {"componentInputParameter": "teacher_uri"}
    assert placement["node_selector"] == {"componentInputParameter": "trainer_node_selector"}


def test_push_inside_the_blessing_condition_requests_constants(spec):
    """Parameters would not reach the condition's sub-DAG (see kd_pipeline.PUSH_REQUEST)."""
    resources = _executor(spec, "push-model")["container"]["resources"]
    assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("1", "4G")
    inner = _all_tasks(spec)["push-model"]["inputs"]["parameters"]
    assert not [name for name in inner if "runtime_" in name]


@pytest.mark.parametrize("task, cpu, memory", [
    ("generate-soft-labels", "beam_cpu", "beam_memory"),
    ("evaluate", "runtime_cpu", "runtime_memory"),
    ("prepare-sweep", "beam_cpu", "beam_memory"),
    ("select-candidate", "runtime_cpu", "runtime_memory"),
    ("current-champion", "runtime_cpu", "runtime_memory"),
    ("resolve-data-uris", "runtime_cpu", "runtime_memory"),
    ("teacher-placement", "runtime_cpu", "runtime_memory")])
def test_cpu_steps_request_cpu_and_memory_from_parameters(spec, task, cpu, memory):
    resources = _executor(spec, task)["container"]["resources"]
    channel = "{{$.inputs.parameters['pipelinechannel--%s']}}"
    assert resources["resourceCpuRequest"] == channel % cpu
    assert resources["resourceMemoryRequest"] == channel % memory
    defaults = spec[0]["root"]["inputDefinitions"]["parameters"]
    assert float(defaults[cpu]["defaultValue"]) >= 1
    assert defaults[memory]["defaultValue"].endswith("G")


def test_other_steps_run_on_the_runtime_image(spec):
    for task in ("generate-soft-labels", "evaluate", "resolve-data-uris", "push-model",
                 "current-champion", "teacher-placement", "prepare-sweep", "select-candidate"):
        container = _executor(spec, task)["container"]
        assert container["image"] == RUNTIME_IMAGE
        assert "accelerator" not in container.get("resources", {})


def test_push_runs_only_when_evaluate_blesses(spec):
    condition = next(t for t in _tasks(spec).values()
                     if t["componentRef"]["name"].startswith("comp-condition"))
    assert condition["triggerPolicy"]["condition"] == \
        "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    inner = spec[0]["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert list(inner) == ["push-model"]
    assert "push-model" not in _tasks(spec)


IO_TASKS = ("prepare-teacher", "generate-soft-labels", "current-champion", "train-model",
            "evaluate", "push-model", "prepare-sweep", "select-candidate")


@pytest.mark.parametrize("task", IO_TASKS)
def test_every_step_doing_remote_io_retries_with_a_backoff(spec, task):
    policy = _all_tasks(spec)[task]["retryPolicy"]
    assert policy["maxRetryCount"] == 2
    assert policy["backoffDuration"] == "30s" and policy["backoffFactor"] == 2


def test_only_io_free_steps_do_not_retry(spec):
    no_retry = {name for name, task in _all_tasks(spec).items()
                if "retryPolicy" not in task and not name.startswith(("condition", "for-loop"))}
    assert no_retry == {"resolve-data-uris", "teacher-placement", "importer", "importer-2"}


@pytest.mark.parametrize("task", ("current-champion", "resolve-data-uris"))
def test_champion_and_run_date_are_never_cached(spec, task):
    assert _tasks(spec)[task]["cachingOptions"] == {}
    assert _tasks(spec)["evaluate"]["cachingOptions"] == {"enableCache": True}


def test_run_date_defaults_to_the_schedule_time(spec):
    run_date = spec[0]["root"]["inputDefinitions"]["parameters"]["run_date"]
    assert run_date["defaultValue"] == "{{$.pipeline_job_schedule_time_utc}}"


def test_every_step_gets_the_run_date_so_caches_change_daily(spec):
    for name, task in _tasks(spec).items():
        if name.startswith(("condition", "for-loop", "importer", "resolve-data-uris",
                            "teacher-placement")):
            continue
        assert "run_date" in task["inputs"]["parameters"], name


def test_kd_candidates_train_in_parallel_and_the_chosen_one_is_evaluated_and_pushed(spec):
    tasks = _tasks(spec)
    loop = next(t for t in tasks.values() if t["componentRef"]["name"].startswith("comp-for-loop"))
    assert loop["parameterIterator"]["items"] == {"inputParameter":
                                                  "pipelinechannel--prepare-sweep-Output"}
    # the loop's students resolve the trainer requests (parameters reach the sub-DAG)
    inner = spec[0]["components"][loop["componentRef"]["name"]]["inputDefinitions"]
    assert {"pipelinechannel--trainer_cpu", "pipelinechannel--trainer_memory"} <= \
        set(inner["parameters"])
    chosen = tasks["select-candidate"]["inputs"]["artifacts"]
    assert chosen["candidates"]["taskOutputArtifact"]["producerTask"] == next(
        name for name, task in tasks.items() if task is loop)
    assert "baseline" not in chosen  # the baseline is one of the loop's candidates
    assert chosen["validation"]["taskOutputArtifact"] == {"outputArtifactKey": "validation",
                                                          "producerTask": "prepare-sweep"}
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model", "producerTask": "select-candidate"}
    assert tasks["evaluate"]["inputs"]["artifacts"]["baseline"]["taskOutputArtifact"] == {
        "outputArtifactKey": "baseline", "producerTask": "select-candidate"}
    blessed = next(t for t in tasks.values() if t["componentRef"]["name"].startswith(
        "comp-condition"))
    assert blessed["inputs"]["artifacts"]["pipelinechannel--select-candidate-model"] == {
        "taskOutputArtifact": {"outputArtifactKey": "model", "producerTask": "select-candidate"}}
    assert not any(task["componentRef"]["name"] == "comp-train-model" for task in tasks.values())
    # no model trains on the held-out rows, and every one stops early on them, not on eval
    for task in ("generate-soft-labels", "prepare-teacher"):
        assert tasks[task]["inputs"]["artifacts"]["train_data"]["taskOutputArtifact"] == {
            "outputArtifactKey": "train", "producerTask": "prepare-sweep"}
    candidates = next(task for task in _all_tasks(spec).values()
                      if task["componentRef"]["name"] == "comp-train-model")
    inputs = candidates["inputs"]
    # kd students read the soft labels, the baseline the rows without them (both inputs given)
    assert inputs["artifacts"]["train_data"]["componentInputArtifact"] == \
        "pipelinechannel--prepare-sweep-train"
    assert inputs["artifacts"]["soft_labels"]["componentInputArtifact"] == \
        "pipelinechannel--generate-soft-labels-soft_labels"
    # every candidate (the baseline too) starts from the champion carried in the loop item
    assert inputs["parameters"]["warm_start"]["componentInputParameter"].endswith(
        "-loop-item")
    assert inputs["parameters"]["warm_start"]["parameterExpressionSelector"] == \
        'parseJson(string_value)["warm_start"]'
    assert tasks["prepare-teacher"]["inputs"]["artifacts"]["validation"][
        "taskOutputArtifact"] == {"outputArtifactKey": "validation",
                                  "producerTask": "prepare-sweep"}
    for task_inputs in (tasks["prepare-teacher"]["inputs"], inputs):
        assert task_inputs["parameters"]["validation_fraction"]["componentInputParameter"] \
            .endswith("validation_fraction")
    assert inputs["artifacts"]["validation"]["componentInputArtifact"] == \
        "pipelinechannel--prepare-sweep-validation"
    defaults = spec[0]["root"]["inputDefinitions"]["parameters"]
    assert defaults["validation_fraction"]["defaultValue"] == 0.1
    assert defaults["kd_variants"]["defaultValue"] == []
    assert defaults["validation_split"]["defaultValue"] == "user"


def test_yaml_holds_no_credentials_or_local_paths(fresh):
    text = fresh.read_text()
    for pattern in (r"/work/", r"/home/", r"/tmp/\w", r"file://", r"localhost", r"127\.0\.0\.1",
                    r"(?i)password", r"(?i)secret", r"(?i)api[_-]?key", r"PRIVATE KEY",
                    r"(?i)access[_-]?token"):
        assert not re.search(pattern, text), pattern


def test_compile_image_flags_replace_the_images(tmp_path):
    path = compile_pipeline(tmp_path / "p.yaml", image="reg.example/rt:7",
                            trainer_image="reg.example/tr:7")
    spec = list(yaml.safe_load_all(open(path)))
    images = {e["container"]["image"] for e in spec[0]["deploymentSpec"]["executors"].values()
              if "container" in e}
    assert images == {"reg.example/rt:7", "reg.example/tr:7"}


def test_compiling_never_imports_tensorflow():
    code = ("import sys; import pipelines.kd_pipeline; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _nested_tasks(spec, dag=None) -> dict:
    """Every task, inside conditions and loops too, by name."""
    components = spec[0]["components"]
    found = {}
    for name, task in (dag or spec[0]["root"]["dag"])["tasks"].items():
        found[name] = task
        inner = components[task["componentRef"]["name"]].get("dag")
        if inner:
            found.update(_nested_tasks(spec, inner))
    return found


def test_cross_fitting_trains_fold_teachers_in_parallel_on_gpu_nodes(spec):
    tasks = _nested_tasks(spec)
    loop = next(t for t in tasks.values() if "parameterIterator" in t)
    assert "cross-fit-folds" in loop["dependentTasks"]  # one iteration per planned fold
    body = spec[0]["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert list(body) == ["train-fold-teacher"]
    resources = spec[0]["deploymentSpec"]["executors"]["exec-train-fold-teacher"]["container"]
    assert resources["image"] == TRAINER_IMAGE
    assert resources["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    platform = spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "exec-train-fold-teacher"]
    assert platform["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"].endswith(
        "trainer_node_selector")
    condition = next(t for t in tasks.values() if "cross_fit_folds" in
                     t.get("triggerPolicy", {}).get("condition", ""))
    assert "!= 0" in condition["triggerPolicy"]["condition"]  # 0 = off: one teacher labels
    fold_teachers = tasks["generate-soft-labels"]["inputs"]["parameters"]["fold_teachers"]
    assert fold_teachers["taskOutputParameter"]["producerTask"].startswith("condition-branches")
