"""Multi-worker training as a TFJob: the manifest, and the runner driving the real
``kubernetes`` client against a loopback API server that walks a job through its states.

The slow test goes further: its server starts the job's workers as local processes with the
``TF_CONFIG`` the Training Operator would give them, so the manifest's command really trains
on 2 workers into an S3 (moto) model folder, and the step reads the chief's result back.
"""

import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import types
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from kubernetes import client as k8s

from recdistill import config as config_lib
from recdistill import exported
from recdistill import steps
from recdistill.training import tfjob
from tests import loopback

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMESPACE = "kubeflow-user"
POD = "kd-run-train-model-1234"
IMAGE = "registry.example/recdistill-trainer:7"
RESOURCES = {"limits": {"cpu": "4", "memory": "16G", "nvidia.com/gpu": "1"},
             "requests": {"cpu": "4", "memory": "16G"}}
NODE_SELECTOR = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
TOLERATIONS = [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
ENV = [{"name": "AWS_ACCESS_KEY_ID",
        "valueFrom": {"secretKeyRef": {"key": "id", "name": "store-credentials"}}},
       {"name": "KFP_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def own_pod():
    """The step's pod as KFP runs it: a ``main`` container and KFP's own volumes beside a
    secret (the store key)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NAMESPACE, "uid": "uid-1234"},
        "spec": {
            "containers": [{
                "name": "main", "image": IMAGE, "resources": RESOURCES, "env": ENV,
                "envFrom": [{"secretRef": {"name": "s3-env"}}],
                "volumeMounts": [{"mountPath": "/secrets/gcp", "name": "gcp-key"},
                                 {"mountPath": "/kfp-launcher", "name": "kfp-launcher"}]}],
            "nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS,
            "serviceAccountName": "pipeline-runner",
            "imagePullSecrets": [{"name": "registry"}],
            "volumes": [{"name": "gcp-key", "secret": {"secretName": "gcp-key"}},
                        {"emptyDir": {}, "name": "kfp-launcher"}]}}


def condition(kind, reason="", message=""):
    return {"type": kind, "status": "True", "reason": reason, "message": message}


def status(*conditions, active=0, succeeded=0, failed=0):
    return {"conditions": list(conditions),
            "replicaStatuses": {"Worker": {"active": active, "succeeded": succeeded,
                                           "failed": failed}}}


CREATED = status(condition("Created", "TFJobCreated"))
RUNNING = status(condition("Created"), condition("Running", "TFJobRunning"), active=2)
SUCCEEDED = status(condition("Created"), {"type": "Running", "status": "False"},
                   condition("Succeeded", "TFJobSucceeded", "TFJob completed"), succeeded=2)
FAILED = status(condition("Created"), {"type": "Running", "status": "False"},
                condition("Failed", "TFJobFailed", "1 Worker replica(s) failed."),
                active=1, failed=1)


class FakeCluster:
    """The parts of the Kubernetes API the runner uses, on loopback.

    A created TFJob takes the next status of ``script`` at each read (the last one sticks;
    None: the job vanishes, as if someone deleted it; a callable is called for the status).
    With ``operator`` set (a
    :class:`LocalOperator`), that runs the job and gives its status instead.
    """

    def __init__(self, script=(CREATED, RUNNING, SUCCEEDED), *, operator=None):
        self.script, self.operator = list(script), operator
        self.jobs, self.reads = {}, {}
        self.created, self.deleted = [], []
        self.refuse = {}  # (method, "pod" | "pods" | "log" | "tfjobs") -> HTTP status
        self.requests = []  # (method, kind) of every request
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                cluster.handle(self, "GET")

            def do_POST(self):
                cluster.handle(self, "POST")

            def do_DELETE(self):
                cluster.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def api_client(self):
        configuration = k8s.Configuration()
        configuration.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        return k8s.ApiClient(configuration)

    def runner(self, poll_seconds=0.01, heartbeat_seconds=60.0):
        return tfjob.TFJobRunner(self.api_client(), namespace=NAMESPACE, pod_name=POD,
                                 poll_seconds=poll_seconds, heartbeat_seconds=heartbeat_seconds)

    def job_status(self, name):
        if self.operator:
            return self.operator.status(name)
        index = self.reads.get(name, 0)
        self.reads[name] = index + 1
        step = self.script[min(index, len(self.script) - 1)]
        return step() if callable(step) else step

    def handle(self, request, method):
        url = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(url.query)
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
        jobs = f"/apis/kubeflow.org/v1/namespaces/{NAMESPACE}/tfjobs"
        kind = ("tfjobs" if url.path.startswith(jobs) else "pods" if url.path == pods
                else "log" if url.path.endswith("/log") else "pod")
        self.requests.append((method, kind))
        if (method, kind) in self.refuse:
            return self.reply(request, self.refuse[(method, kind)], {"kind": "Status"})
        if method == "GET" and url.path == f"{pods}/{POD}":
            return self.reply(request, 200, own_pod())
        if method == "GET" and url.path == pods:
            [selector] = query["labelSelector"]
            job = selector.split("=", 1)[1]
            return self.reply(request, 200, {"kind": "PodList", "apiVersion": "v1",
                                             "metadata": {}, "items": [
                {"metadata": {"name": f"{job}-worker-{i}", "namespace": NAMESPACE}}
                for i in range(2)]})
        match = re.fullmatch(f"{pods}/(.+)-worker-(\\d)/log", url.path)
        if method == "GET" and match:
            assert query["container"] == ["tensorflow"] and query["tailLines"] == ["20"]
            return self.reply(request, 200, f"worker {match.group(2)} said goodbye\n")
        if method == "POST" and url.path == jobs:
            manifest = json.loads(body)
            name = manifest["metadata"]["name"]
            self.created.append(manifest)
            if name in self.jobs:
                return self.reply(request, 409, {"kind": "Status", "reason": "AlreadyExists"})
            self.jobs[name] = manifest
            if self.operator:
                self.operator.start(manifest)
            return self.reply(request, 201, manifest)
        name = url.path[len(jobs) + 1:]
        if name not in self.jobs:
            return self.reply(request, 404, {"kind": "Status", "reason": "NotFound"})
        if method == "GET":
            job_status = self.job_status(name)
            if job_status is None:  # someone else deleted it
                del self.jobs[name]
                return self.reply(request, 404, {"kind": "Status", "reason": "NotFound"})
            return self.reply(request, 200, {**self.jobs[name], "status": job_status})
        if method == "DELETE":
            self.deleted.append((name, query.get("propagationPolicy")
                                 or json.loads(body or b"{}").get("propagationPolicy")))
            del self.jobs[name]
            return self.reply(request, 200, {"kind": "Status", "status": "Success"})
        return self.reply(request, 405, {"kind": "Status"})

    @staticmethod
    def reply(request, code, payload):
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        request.send_response(code)
        request.send_header("Content-Type", "application/json" if not isinstance(
            payload, str) else "text/plain")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


ARGS = ["recdistill", "train", "--config", "s3://b/student.config", "--model-dir", "s3://b/m"]


def test_the_library_half_never_imports_kfp():
    code = ("import sys, recdistill.training.tfjob; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kfp'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the manifest ---------------------------------------------------------------------------

def test_worker_template_copies_the_steps_pod_and_only_its_secret_volumes():
    template = tfjob.WorkerTemplate.from_pod(own_pod())
    assert template.image == IMAGE and template.resources == RESOURCES
    assert template.node_selector == NODE_SELECTOR and template.tolerations == TOLERATIONS
    assert template.service_account == "pipeline-runner"
    assert template.env == ENV and template.env_from == [{"secretRef": {"name": "s3-env"}}]
    assert template.volumes == [{"name": "gcp-key", "secret": {"secretName": "gcp-key"}}]
    assert template.volume_mounts == [{"mountPath": "/secrets/gcp", "name": "gcp-key"}]


def test_worker_template_refuses_a_pod_whose_container_is_ambiguous():
    pod = own_pod()
    pod["spec"]["containers"] = [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]
    with pytest.raises(ValueError, match=r"\['a', 'b'\] and none named 'main'"):
        tfjob.WorkerTemplate.from_pod(pod)


def test_manifest_runs_n_workers_of_the_steps_image_resources_and_placement():
    owner = {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "uid-1234"}
    manifest = tfjob.tfjob_manifest("job-a", NAMESPACE, 3, ARGS,
                                    tfjob.WorkerTemplate.from_pod(own_pod()), owner=owner)
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "TFJob"
    assert manifest["metadata"]["name"] == "job-a"
    assert manifest["metadata"]["namespace"] == NAMESPACE
    assert manifest["metadata"]["ownerReferences"] == [owner]
    assert manifest["spec"]["runPolicy"]["backoffLimit"] == 3
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert list(replicas) == ["Worker"]  # worker 0 is the chief
    worker = replicas["Worker"]
    assert worker["replicas"] == 3 and worker["restartPolicy"] == "ExitCode"
    assert worker["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    spec = worker["template"]["spec"]
    [container] = spec["containers"]
    assert container["name"] == "tensorflow" and container["image"] == IMAGE
    assert container["command"] == ARGS
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"] == RESOURCES and container["env"] == ENV
    assert spec["nodeSelector"] == NODE_SELECTOR and spec["tolerations"] == TOLERATIONS
    assert spec["serviceAccountName"] == "pipeline-runner"
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert [v["name"] for v in spec["volumes"]] == ["gcp-key"]


def test_manifest_leaves_out_what_the_pod_does_not_set():
    manifest = tfjob.tfjob_manifest("j", NAMESPACE, 2, ARGS, tfjob.WorkerTemplate(image=IMAGE))
    spec = manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    assert spec == {"containers": [{"name": "tensorflow", "image": IMAGE, "command": ARGS}]}
    assert "ownerReferences" not in manifest["metadata"]


def test_train_args_are_the_steps_arguments_for_recdistill_train():
    assert tfjob.train_args("s3://b/c.config", "s3://b/m", train_uri="s3://b/t",
                            eval_uri="s3://b/e", warm_start="s3://b/serving/3", without_kd=True,
                            num_steps=50, mixed_precision=True) == [
        "recdistill", "train", "--config", "s3://b/c.config", "--model-dir", "s3://b/m",
        "--train", "s3://b/t", "--eval", "s3://b/e", "--warm-start", "s3://b/serving/3",
        "--num-steps", "50", "--without-kd", "--mixed-precision"]
    assert tfjob.train_args("c", "m") == ["recdistill", "train", "--config", "c",
                                          "--model-dir", "m"]


def test_train_args_of_a_kd_variant_parse_back_to_the_same_overrides():
    from recdistill import cli

    overrides = {"loss_weight": 0.5, "loss_type": "KL_DIVERGENCE_LOSS"}
    args = tfjob.train_args("c", "m", kd_overrides=overrides)
    assert cli.build_parser().parse_args(args[1:]).kd_overrides == overrides


def test_train_args_of_a_fold_teacher_parse_back_to_the_same_fold():
    from recdistill import cli

    args = tfjob.train_args("c", "m", exclude_fold=("user_id", 3, 1))
    parsed = cli.build_parser().parse_args(args[1:])
    assert (parsed.cross_fit_key, parsed.cross_fit_folds, parsed.cross_fit_fold) == (
        "user_id", 3, 1)
    parsed = cli.build_parser().parse_args(tfjob.train_args("c", "m",
                                                            exclude_fold=("", 2, 0))[1:])
    assert (parsed.cross_fit_key, parsed.cross_fit_folds, parsed.cross_fit_fold) == (None, 2, 0)


def test_job_name_is_a_valid_name_fixed_by_the_model_uri():
    name = tfjob.job_name("minio://mlpipeline/v2/artifacts/kd/run-1/train-model/model")
    assert re.fullmatch(r"[a-z0-9-]{1,63}", name)
    assert name == tfjob.job_name("minio://mlpipeline/v2/artifacts/kd/run-1/train-model/model")
    assert name != tfjob.job_name("minio://mlpipeline/v2/artifacts/kd/run-2/train-model/model")


def test_job_state_is_the_last_holding_condition_and_finished_wins():
    assert tfjob.job_state({}) == "Pending"
    assert tfjob.job_state({"status": CREATED}) == "Created"
    assert tfjob.job_state({"status": RUNNING}) == "Running"
    assert tfjob.job_state({"status": SUCCEEDED}) == "Succeeded"
    assert tfjob.job_state({"status": FAILED}) == "Failed"


# --- the runner against the loopback API server ---------------------------------------------

def test_runner_submits_waits_logs_progress_and_deletes_a_succeeded_job(caplog):
    caplog.set_level(logging.INFO, logger=tfjob.__name__)
    with FakeCluster() as cluster:
        job = cluster.runner().run("job-ok", ARGS, 2)
    assert tfjob.job_state(job) == "Succeeded"
    [created] = cluster.created
    worker = created["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2
    assert worker["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert created["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "uid-1234"}]
    assert cluster.deleted == [("job-ok", ["Foreground"])] and not cluster.jobs
    text = caplog.text
    assert f"Submitted TFJob {NAMESPACE}/job-ok: 2 workers of {IMAGE}" in text
    assert "job-ok: Created (Worker: 0 active, 0 succeeded, 0 failed)" in text
    assert "job-ok: Running (Worker: 2 active, 0 succeeded, 0 failed)" in text
    assert "job-ok: Succeeded (Worker: 0 active, 2 succeeded, 0 failed)" in text
    assert text.index("Created (") < text.index("Running (") < text.index("Succeeded (")
    assert re.search(r"Succeeded \(.*\), \d+ s", text)


@pytest.mark.parametrize("heartbeat, lines", [(60.0, 1), (0.0, 3)])
def test_an_unchanged_state_is_logged_again_only_at_the_heartbeat(caplog, heartbeat, lines):
    caplog.set_level(logging.INFO, logger=tfjob.__name__)
    with FakeCluster(script=(RUNNING, RUNNING, RUNNING, SUCCEEDED)) as cluster:
        cluster.runner(heartbeat_seconds=heartbeat).run("job-h", ARGS, 2)
    assert caplog.text.count("job-h: Running (Worker: 2 active") == lines


def test_runner_fails_with_the_jobs_reason_and_worker_logs_and_deletes_it():
    with FakeCluster(script=(CREATED, RUNNING, FAILED)) as cluster:
        with pytest.raises(tfjob.TFJobFailedError) as error:
            cluster.runner().run("job-bad", ARGS, 2)
    message = str(error.value)
    assert f"TFJob {NAMESPACE}/job-bad failed: TFJobFailed 1 Worker replica(s) failed." in message
    assert "--- job-bad-worker-0 (last 20 lines) ---\nworker 0 said goodbye" in message
    assert "worker 1 said goodbye" in message
    assert cluster.deleted == [("job-bad", ["Foreground"])]


def test_a_job_deleted_by_someone_else_fails_the_step_with_a_clear_error():
    with FakeCluster(script=(CREATED, RUNNING, None)) as cluster:
        with pytest.raises(RuntimeError, match=f"TFJob {NAMESPACE}/job-v disappeared while this "
                                               f"step waited for it.*pod {POD}"):
            cluster.runner().run("job-v", ARGS, 2)
    assert cluster.deleted == []  # nothing left to delete


def test_the_shipped_role_grants_every_call_the_runner_makes():
    with FakeCluster(script=(FAILED,)) as cluster:
        cluster.jobs["job-r"] = {"metadata": {"name": "job-r"}}  # replaced: get, delete, create
        with pytest.raises(tfjob.TFJobFailedError):
            cluster.runner().run("job-r", ARGS, 2)
    role, binding = yaml.safe_load_all((REPO_ROOT / "deploy" / "tfjob-rbac.yaml").read_text())
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    verbs = {"GET": "get", "POST": "create", "DELETE": "delete"}
    resources = {"pod": ("", "pods"), "pods": ("", "pods"), "log": ("", "pods/log"),
                 "tfjobs": ("kubeflow.org", "tfjobs")}
    used = {(*resources[kind], "list" if kind == "pods" else verbs[method])
            for method, kind in cluster.requests}
    assert used == granted  # everything used is granted, nothing more
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_unreadable_worker_logs_do_not_hide_the_failure(caplog):
    with FakeCluster(script=(FAILED,)) as cluster:
        cluster.refuse[("GET", "log")] = 403
        with pytest.raises(tfjob.TFJobFailedError, match="worker logs unreadable: 403"):
            cluster.runner().run("job-bad", ARGS, 2)
    assert "Could not read the logs of TFJob job-bad's workers: 403" in caplog.text
    assert cluster.deleted == [("job-bad", ["Foreground"])]


def test_a_retried_step_adopts_the_running_job_of_its_first_attempt(caplog):
    caplog.set_level(logging.INFO, logger=tfjob.__name__)
    with FakeCluster(script=(RUNNING, SUCCEEDED)) as cluster:
        cluster.jobs["job-r"] = {"metadata": {"name": "job-r"}}
        job = cluster.runner().run("job-r", ARGS, 2)
    assert tfjob.job_state(job) == "Succeeded"
    assert len(cluster.created) == 1  # the refused create only
    assert "exists (Running): a previous attempt of this step started it" in caplog.text
    assert cluster.deleted == [("job-r", ["Foreground"])]


def test_a_failed_job_of_a_previous_attempt_is_replaced(caplog):
    caplog.set_level(logging.INFO, logger=tfjob.__name__)
    with FakeCluster(script=(FAILED, CREATED, SUCCEEDED)) as cluster:
        cluster.jobs["job-f"] = {"metadata": {"name": "job-f"}}
        job = cluster.runner().run("job-f", ARGS, 2)
    assert tfjob.job_state(job) == "Succeeded"
    assert len(cluster.created) == 2
    assert cluster.deleted == [("job-f", ["Foreground"]), ("job-f", ["Foreground"])]
    assert "failed in a previous attempt (TFJobFailed 1 Worker replica(s) failed.)" in caplog.text


@pytest.mark.parametrize("refused, code, fix", [
    (("POST", "tfjobs"), 404, "install the Kubeflow Training Operator"),
    (("POST", "tfjobs"), 403, "kubectl apply -n kubeflow-user -f deploy/tfjob-rbac.yaml"),
    (("GET", "pod"), 403, "deploy/tfjob-rbac.yaml"),
    (("GET", "pod"), 404, "run this in the pipeline step's pod"),
])
def test_cluster_refusals_name_the_missing_piece(refused, code, fix):
    with FakeCluster() as cluster:
        cluster.refuse[refused] = code
        with pytest.raises(RuntimeError, match=re.escape(fix)) as error:
            cluster.runner().run("job-x", ARGS, 2)
    assert f"{code} " in str(error.value) and not cluster.jobs


def test_a_cancelled_step_deletes_its_job():
    def cancel():  # SIGTERM while the step waits, as when the run is terminated
        os.kill(os.getpid(), signal.SIGTERM)
        return RUNNING

    with FakeCluster(script=(CREATED, cancel, RUNNING)) as cluster:
        with pytest.raises(Exception, match="SIGTERM: the step was cancelled"):
            cluster.runner().run("job-c", ARGS, 2)
    assert cluster.deleted == [("job-c", ["Foreground"])]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# --- the step: checks before submitting -------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from recdistill.data import sample

    return sample.write_sample_data(str(tmp_path_factory.mktemp("sample")), rows=200)


@pytest.fixture
def student_config(data):
    return config_lib.load_config(data.student_config)


REMOTE = dict(train_uri="s3://bkt/train", eval_uri="s3://bkt/eval")


@pytest.mark.parametrize("model_dir", ["/tmp/m", "s3://bkt/m", "minio://mlpipeline/v2/m"])
def test_a_model_dir_tensorflow_cannot_share_is_refused_before_submitting(student_config,
                                                                         model_dir):
    with pytest.raises(ValueError, match=rf"checkpoints through model_dir '{model_dir}', which "
                                         r"TensorFlow writes itself and can only on gs://"):
        tfjob.train_with_tfjob(student_config, "s3://bkt/c.config", model_dir, 2,
                               runner=object(), **REMOTE)


@pytest.mark.parametrize("uris, what", [
    ({"train_uri": "data/train.csv", "eval_uri": "s3://bkt/eval"}, "'data/train.csv' (train"),
    ({"train_uri": "s3://bkt/train"}, "eval.csv' (eval data)"),  # the config's default
])
def test_a_local_input_is_refused_too(student_config, uris, what):
    with pytest.raises(ValueError, match=re.escape(what) + r".*Put it on a shared store"):
        tfjob.train_with_tfjob(student_config, "s3://bkt/c.config", "gs://bkt/m", 2,
                               runner=object(), **uris)


def test_early_stopping_is_refused_on_several_workers(student_config):
    student_config.train_config.early_stopping.SetInParent()
    with pytest.raises(ValueError, match="early_stopping is single-worker only"):
        tfjob.train_with_tfjob(student_config, "s3://bkt/c.config", "gs://bkt/m", 2,
                               runner=object(), **REMOTE)


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_steps_refuse_a_worker_count_that_is_not_a_whole_number_from_1(data, workers):
    with pytest.raises(ValueError, match="must be a whole number >= 1"):
        steps.train_model(data.student_config, "m", workers=workers)


# --- the step's dispatch: in the pod or on a TFJob ---------------------------------------------

@pytest.fixture
def recorded(monkeypatch):
    """Replaces in-pod training and the TFJob path by recorders: {"pod": [...], "tfjob": [...]}."""
    from recdistill import training

    calls = {"pod": [], "tfjob": []}
    result = types.SimpleNamespace(export_dir="e", metrics={})
    monkeypatch.setattr(training, "train",
                        lambda cfg, **kw: calls["pod"].append((cfg, kw)) or result)
    monkeypatch.setattr(tfjob, "train_with_tfjob",
                        lambda *a, **kw: calls["tfjob"].append((a, kw)) or result)
    return calls


def test_one_worker_trains_in_the_steps_pod_as_before(data, recorded):
    steps.train_model(data.student_config, "s3://bkt/m", num_steps=3)
    assert len(recorded["pod"]) == 1 and recorded["tfjob"] == []
    assert recorded["pod"][0][1]["model_dir"] == "s3://bkt/m"


def test_several_workers_submit_a_tfjob_with_the_steps_arguments(data, recorded):
    steps.train_model(data.student_config, "s3://bkt/m", train_uri="s3://bkt/t",
                      eval_uri="s3://bkt/e", warm_start="s3://bkt/serving/2", without_kd=True,
                      num_steps=9, mixed_precision=True, workers=3)
    assert recorded["pod"] == []
    [((cfg, config_uri, model_dir, workers), kwargs)] = recorded["tfjob"]
    assert (config_uri, model_dir, workers) == (data.student_config, "s3://bkt/m", 3)
    assert not cfg.model_config.kd  # the baseline's config: without_kd applied before the checks
    assert kwargs == dict(train_uri="s3://bkt/t", eval_uri="s3://bkt/e",
                          warm_start="s3://bkt/serving/2", without_kd=True, num_steps=9,
                          mixed_precision=True, exclude_fold=(), kd_overrides={})


def test_a_gbdt_trains_in_the_pod_whatever_the_worker_count(data, recorded, tmp_path, caplog):
    cfg = config_lib.load_config(data.teacher_config)
    cfg.model_config.ClearField("dcn")
    cfg.model_config.model_class = "GBDT"
    cfg.model_config.gbdt.num_trees = 5
    path = tmp_path / "gbdt.config"
    path.write_text(config_lib.to_text(cfg))
    caplog.set_level(logging.INFO, logger=steps.__name__)
    steps.prepare_teacher(str(path), "s3://bkt/teacher", workers=4)
    assert len(recorded["pod"]) == 1 and recorded["tfjob"] == []
    assert "a GBDT trains in one process; training here, not on 4 workers" in caplog.text


# --- end to end: the manifest's command trains on 2 worker processes -------------------------

class LocalOperator:
    """Runs a TFJob's Worker replicas as local processes, as the Training Operator runs pods:
    the container's command, ``TF_CONFIG`` naming every worker, this one's index. The job
    succeeds when worker 0 (the chief) exits 0 and fails when a worker exits otherwise."""

    def __init__(self, log_dir):
        self.log_dir, self.processes = log_dir, []

    def start(self, manifest):
        worker = manifest["spec"]["tfReplicaSpecs"]["Worker"]
        [container] = worker["template"]["spec"]["containers"]
        assert container["command"][:2] == ["recdistill", "train"]
        command = [sys.executable, "-m", "recdistill.cli", *container["command"][1:]]
        addresses = [f"127.0.0.1:{port}" for port in loopback.free_ports(worker["replicas"])]
        for index in range(worker["replicas"]):
            tf_config = {"cluster": {"worker": addresses},
                         "task": {"type": "worker", "index": index}}
            log = open(self.log_dir / f"worker-{index}.log", "w")
            self.processes.append(subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}))

    def status(self, name):
        codes = [p.poll() for p in self.processes]
        if codes[0] == 0:
            return SUCCEEDED
        if any(code not in (None, 0) for code in codes):
            return FAILED
        return status(condition("Created"), condition("Running"),
                      active=codes.count(None), succeeded=codes.count(0))

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()

    def logs(self):
        return "\n".join(path.read_text() for path in sorted(self.log_dir.glob("*.log")))


@pytest.mark.slow
def test_a_step_with_two_workers_trains_on_the_job_and_reads_the_chiefs_result(
        data, tmp_path, monkeypatch, caplog):
    """steps.train_model(workers=2) the whole way: the TFJob's command runs on 2 processes
    under MultiWorkerMirroredStrategy, the chief exports, the step reads its result and copies
    the training report. The processes share the disk, so the model folder may be local here
    (in a cluster it must be gs://; that check is tested above)."""
    operator = LocalOperator(tmp_path)
    monkeypatch.setattr(tfjob, "check_shared", lambda model_dir, inputs: None)
    caplog.set_level(logging.INFO, logger=tfjob.__name__)
    model_dir = str(tmp_path / "model")
    with FakeCluster(operator=operator) as cluster:
        runner = cluster.runner(poll_seconds=0.5)
        monkeypatch.setattr(tfjob, "TFJobRunner", lambda: runner)
        try:
            result = steps.train_model(data.student_config, model_dir, train_uri=data.train_path,
                                       eval_uri=data.eval_path, without_kd=True, num_steps=6,
                                       workers=2, report_copy=str(tmp_path / "report.html"))
        finally:
            operator.stop()
    logs = operator.logs()
    assert logs.count("Training on 2 workers with MultiWorkerMirroredStrategy") == 2, logs[-3000:]
    assert result.steps == 6 and 0.0 <= result.metrics["eval_auc"] <= 1.0, logs[-3000:]
    assert result.export_dir == os.path.join(model_dir, "export")
    assert "loss" in result.metrics
    written = exported.read_metadata(result.export_dir)
    assert result.metrics["eval_auc"] == written["eval_metrics"]["eval_auc"]
    assert (tmp_path / "report.html").read_text().startswith("<")
    # Only the chief wrote: no worker folder is left in the shared model folder.
    assert not [name for name in os.listdir(model_dir) if name.startswith(".worker")]
    assert cluster.deleted == [(tfjob.job_name(model_dir), ["Foreground"])]
    assert "Running (Worker: 2 active" in caplog.text and "Succeeded" in caplog.text
