"""Multi-worker training as a Kubeflow Training Operator ``TFJob``, submitted by a pipeline step.

Why: a training step is one KFP pod, and one pod is one machine. With ``workers`` > 1 the step
does not train in-process: it submits a ``TFJob`` (``kubeflow.org/v1``) whose ``Worker``
replicas all run ``recdistill train`` into the step's model URI. The operator sets ``TF_CONFIG``
on each, so they train under MultiWorkerMirroredStrategy and worker 0, the chief, writes the
checkpoints and the export there (``recdistill.training.distribution``). The step waits, logging
the replica states, fails with the job's reason (and the failed workers' last log lines),
deletes the job, and reads the result from the export's ``recdistill.json``.

The workers copy the step's own pod (:class:`WorkerTemplate`): its image (so
``recdistill compile --trainer-image`` applies to them too), CPU/memory/GPU requests and limits,
node selector, tolerations, service account, image pull secrets, environment and secret
volumes (the store credentials). So the pipeline's ``trainer_*`` parameters size every worker
and nothing is configured twice. The job is owned by the step's pod (a deleted run deletes its
jobs) and named after the model URI, so a retried step adopts the job its first attempt started
instead of starting a second one writing the same folder.

Needs, in the cluster: the Training Operator, and RBAC for the step's service account to read
its own pod and manage TFJobs (``deploy/tfjob-rbac.yaml``). The workers are other pods, so
every input must be on a shared store (gs://, s3://, minio://), and the model URI on one
TensorFlow writes checkpoints to itself: gs:// (:data:`MODEL_DIR_SCHEMES`).

Never imports ``kfp``.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import threading
import time
from types import MappingProxyType
from typing import Mapping, Optional, Sequence

from recdistill import exported
from recdistill.data import filesystems
from recdistill.training.result import TrainResult

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
#: The container name the Training Operator looks for in a TFJob replica.
CONTAINER = "tensorflow"
#: The label the Training Operator puts on every pod of a job.
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
#: KFP's container in a step's pod (its launcher runs in init containers).
KFP_CONTAINER = "main"
_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_FINISHED = ("Succeeded", "Failed")
_LOG_LINES = 20


class TFJobFailedError(RuntimeError):
    """The TFJob ended ``Failed`` (the message has its reason and the workers' last lines)."""


@dataclasses.dataclass(frozen=True)
class WorkerTemplate:
    """What each worker pod takes from the submitting step's pod (JSON dicts, camelCase)."""

    image: str
    resources: dict = dataclasses.field(default_factory=dict)
    node_selector: dict = dataclasses.field(default_factory=dict)
    tolerations: list = dataclasses.field(default_factory=list)
    service_account: str = ""
    image_pull_secrets: list = dataclasses.field(default_factory=list)
    env: list = dataclasses.field(default_factory=list)
    env_from: list = dataclasses.field(default_factory=list)
    volumes: list = dataclasses.field(default_factory=list)
    volume_mounts: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_pod(cls, pod: dict) -> "WorkerTemplate":
        """The template of a pod (a Kubernetes ``Pod`` as JSON): its ``main`` container (KFP's),
        or its only one. Of the volumes only secrets travel (the others are KFP's own)."""
        spec = pod["spec"]
        containers = spec["containers"]
        named = [c for c in containers if c["name"] == KFP_CONTAINER]
        if not named and len(containers) != 1:
            raise ValueError(
                f"pod {pod['metadata']['name']} has containers "
                f"{[c['name'] for c in containers]} and none named {KFP_CONTAINER!r}: cannot "
                "tell which one the TFJob workers should copy.")
        container = (named or containers)[0]
        secrets = [v for v in spec.get("volumes") or [] if "secret" in v]
        secret_names = {v["name"] for v in secrets}
        return cls(image=container["image"], resources=container.get("resources") or {},
                   node_selector=spec.get("nodeSelector") or {},
                   tolerations=spec.get("tolerations") or [],
                   service_account=spec.get("serviceAccountName") or "",
                   image_pull_secrets=spec.get("imagePullSecrets") or [],
                   env=container.get("env") or [], env_from=container.get("envFrom") or [],
                   volumes=secrets,
                   volume_mounts=[m for m in container.get("volumeMounts") or []
                                  if m["name"] in secret_names])


def train_args(config_uri: str, model_dir: str, *, train_uri: str = "", eval_uri: str = "",
               warm_start: str = "", without_kd: bool = False, num_steps: int = 0,
               mixed_precision: bool = False, exclude_fold: Sequence = (),
               kd_overrides: Mapping = MappingProxyType({})) -> list:
    """The ``recdistill train`` command line every worker runs (same arguments as the step).

    ``exclude_fold`` ``(key, K, k)`` trains a cross-fitting fold teacher on every worker;
    ``kd_overrides`` a kd sweep variant (``recdistill.kd.variants``).
    """
    args = ["recdistill", "train", "--config", config_uri, "--model-dir", model_dir]
    for flag, value in (("--train", train_uri), ("--eval", eval_uri),
                        ("--warm-start", warm_start)):
        if value:
            args += [flag, value]
    if num_steps:
        args += ["--num-steps", str(num_steps)]
    if exclude_fold:
        key, num_folds, fold = exclude_fold
        args += ["--cross-fit-fold", str(fold), "--cross-fit-folds", str(num_folds)]
        args += ["--cross-fit-key", key] if key else []
    if kd_overrides:
        args += ["--kd-overrides", json.dumps(dict(kd_overrides), sort_keys=True)]
    return (args + ["--without-kd"] * without_kd + ["--mixed-precision"] * mixed_precision)


def job_name(model_dir: str) -> str:
    """The TFJob's name: fixed by the model URI, so a retried step finds its first attempt's."""
    return "recdistill-train-" + hashlib.sha256(model_dir.encode()).hexdigest()[:12]


def tfjob_manifest(name: str, namespace: str, workers: int, args: Sequence[str],
                   template: WorkerTemplate, *, owner: Optional[dict] = None,
                   backoff_limit: int = 3) -> dict:
    """A ``TFJob`` of ``workers`` Worker replicas running ``args`` (worker 0 is the chief).

    Args:
      owner: an ``ownerReference`` (the submitting pod): deleting it deletes the job.
      backoff_limit: pod restarts before the job fails. ``restartPolicy: ExitCode`` restarts
        a worker only when it was killed (exit code >= 128: preemption, OOM); an error exit
        (bad config, bad data) fails the job at once. A restarted job resumes from the chief's
        last checkpoint.
    """
    container = _non_empty({"name": CONTAINER, "image": template.image, "command": list(args),
                            "resources": template.resources, "env": template.env,
                            "envFrom": template.env_from,
                            "volumeMounts": template.volume_mounts})
    pod_spec = _non_empty({"containers": [container], "nodeSelector": template.node_selector,
                           "tolerations": template.tolerations,
                           "serviceAccountName": template.service_account,
                           "imagePullSecrets": template.image_pull_secrets,
                           "volumes": template.volumes})
    metadata = {"name": name, "namespace": namespace,
                "labels": {"app.kubernetes.io/created-by": "recdistill"}}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata,
        "spec": {
            "runPolicy": {"backoffLimit": backoff_limit, "cleanPodPolicy": "None"},
            "tfReplicaSpecs": {"Worker": {
                "replicas": workers, "restartPolicy": "ExitCode",
                # An Istio sidecar would keep a finished worker's pod running and sit between
                # the workers' gRPC collectives (Kubeflow namespaces inject it by default).
                "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                             "spec": pod_spec}}}},
    }


def _non_empty(fields: dict) -> dict:
    return {key: value for key, value in fields.items() if value}


def job_state(job: dict) -> str:
    """The job's latest condition that holds (Created, Running, Restarting, Succeeded, Failed),
    or 'Pending' before the operator has seen it."""
    holding = [c for c in (job.get("status") or {}).get("conditions") or []
               if c.get("status") == "True"]
    finished = [c for c in holding if c["type"] in _FINISHED]
    return (finished or holding or [{"type": "Pending"}])[-1]["type"]


def _replicas(job: dict) -> str:
    statuses = (job.get("status") or {}).get("replicaStatuses") or {}
    return "; ".join(
        f"{kind}: {s.get('active', 0)} active, {s.get('succeeded', 0)} succeeded, "
        f"{s.get('failed', 0)} failed" for kind, s in sorted(statuses.items())) or "no pods yet"


def _failure(job: dict) -> str:
    failed = [c for c in job["status"]["conditions"]
              if c["type"] == "Failed" and c.get("status") == "True"]
    return " ".join(filter(None, (failed[-1].get("reason"), failed[-1].get("message"))))


class _Terminated(Exception):
    """SIGTERM arrived (the run was cancelled): unwind so the job is deleted."""


@contextlib.contextmanager
def _sigterm_unwinds():
    """Turns SIGTERM into an exception while waiting, so a cancelled run deletes its job (the
    owner reference only acts when the step's pod is deleted, which may be days later)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated("SIGTERM: the step was cancelled")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class TFJobRunner:
    """Submits a TFJob, waits for it, deletes it; through the Kubernetes API.

    Args:
      api_client: a ``kubernetes.client.ApiClient``; default: the pod's in-cluster credentials.
      namespace: default: the pod's own namespace.
      pod_name: the submitting pod; default: ``KFP_POD_NAME`` (set by KFP), else ``HOSTNAME``.
      poll_seconds: between two reads of the job's status.
      heartbeat_seconds: log the state at least this often, also when it has not changed.
      request_seconds: the longest one API call may take (a hung API server fails the step,
        whose retry then adopts the job).
    """

    def __init__(self, api_client=None, *, namespace: str = "", pod_name: str = "",
                 poll_seconds: float = 10.0, heartbeat_seconds: float = 60.0,
                 request_seconds: float = 60.0):
        from kubernetes import client

        self._client = api_client or _in_cluster_client()
        self._custom = client.CustomObjectsApi(self._client)
        self._core = client.CoreV1Api(self._client)
        self.namespace = namespace or _own_namespace()
        self.pod_name = pod_name or os.environ.get("KFP_POD_NAME") or os.environ.get(
            "HOSTNAME", "")
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.request_seconds = request_seconds

    def own_pod(self) -> dict:
        """The submitting pod as JSON (camelCase, as ``kubectl get -o json`` shows it)."""
        pod = self._call(self._core.read_namespaced_pod, self.pod_name, self.namespace,
                         what=f"read its own pod {self.namespace}/{self.pod_name}")
        return self._client.sanitize_for_serialization(pod)

    def run(self, name: str, args: Sequence[str], workers: int) -> dict:
        """Runs ``args`` on ``workers`` pods shaped like this one; returns the finished job.

        Raises:
          TFJobFailedError: the job failed (its reason and the workers' last log lines).
          RuntimeError: the API refused (no Training Operator, no RBAC; the message says
            which), or the job was deleted while the step waited.
        """
        pod = self.own_pod()
        owner = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                 "uid": pod["metadata"]["uid"]}
        manifest = tfjob_manifest(name, self.namespace, workers, args,
                                  WorkerTemplate.from_pod(pod), owner=owner)
        with _sigterm_unwinds():
            self._submit(manifest)
            try:
                job = self._wait(name)
                if job_state(job) == "Failed":
                    raise TFJobFailedError(
                        f"TFJob {self.namespace}/{name} failed: {_failure(job)}\n"
                        f"{self._worker_logs(name)}")
            finally:
                self._delete(name)
        return job

    def _submit(self, manifest: dict) -> None:
        """Creates the job; adopts one of the same name (a previous attempt of this step)
        unless it failed, in which case it is replaced."""
        name = manifest["metadata"]["name"]
        try:
            self._create(manifest)
        except _Conflict:
            existing = self._get(name)
            if job_state(existing) != "Failed":
                logger.info("TFJob %s/%s exists (%s): a previous attempt of this step started "
                            "it; waiting for it", self.namespace, name, job_state(existing))
                return
            logger.info("TFJob %s/%s failed in a previous attempt (%s); replacing it",
                        self.namespace, name, _failure(existing))
            self._delete(name)
            while self._get(name, missing_ok=True):  # its pods go first (foreground)
                time.sleep(self.poll_seconds)
            self._create(manifest)
        worker = manifest["spec"]["tfReplicaSpecs"]["Worker"]
        logger.info("Submitted TFJob %s/%s: %d workers of %s", self.namespace, name,
                    worker["replicas"], worker["template"]["spec"]["containers"][0]["image"])

    def _create(self, manifest: dict) -> None:
        self._call(self._custom.create_namespaced_custom_object, GROUP, VERSION,
                   self.namespace, PLURAL, manifest,
                   what=f"create TFJob {manifest['metadata']['name']}")

    def _wait(self, name: str) -> dict:
        """Polls the job until it succeeds or fails, logging each change of state and replica
        counts, and at least every ``heartbeat_seconds``."""
        started = time.monotonic()
        last, last_logged = None, started
        while True:
            job = self._get(name, missing_ok=True)
            if job is None:
                raise RuntimeError(
                    f"TFJob {self.namespace}/{name} disappeared while this step waited for it: "
                    f"someone deleted it (or its owner, pod {self.pod_name}). Run the step again.")
            state = job_state(job)
            now = time.monotonic()
            shown = (state, _replicas(job))
            if shown != last or now - last_logged >= self.heartbeat_seconds:
                logger.info("TFJob %s/%s: %s (%s), %.0f s", self.namespace, name, state,
                            shown[1], now - started)
                last, last_logged = shown, now
            if state in _FINISHED:
                return job
            time.sleep(self.poll_seconds)

    def _get(self, name: str, *, missing_ok: bool = False) -> Optional[dict]:
        """The job, or None when it does not exist and ``missing_ok``."""
        try:
            return self._call(self._custom.get_namespaced_custom_object, GROUP, VERSION,
                              self.namespace, PLURAL, name, what=f"read TFJob {name}",
                              absent=missing_ok)
        except _Absent:
            return None

    def _delete(self, name: str) -> None:
        """Deletes the job and (foreground) its pods; a job already gone is fine."""
        try:
            self._call(self._custom.delete_namespaced_custom_object, GROUP, VERSION,
                       self.namespace, PLURAL, name, what=f"delete TFJob {name}", absent=True,
                       propagation_policy="Foreground")
        except _Absent:
            pass
        logger.info("Deleted TFJob %s/%s", self.namespace, name)

    def _worker_logs(self, name: str) -> str:
        """The last lines of each worker's log, for the failure message. Reading them is
        best effort: a refusal is logged and named in the text, the failure stands."""
        from kubernetes.client.exceptions import ApiException

        timeout = {"_request_timeout": self.request_seconds}
        try:
            pods = self._core.list_namespaced_pod(
                self.namespace, label_selector=f"{JOB_NAME_LABEL}={name}", **timeout).items
            parts = []
            for pod in sorted(pods, key=lambda p: p.metadata.name):
                text = self._core.read_namespaced_pod_log(
                    pod.metadata.name, self.namespace, container=CONTAINER,
                    tail_lines=_LOG_LINES, **timeout)
                parts.append(f"--- {pod.metadata.name} (last {_LOG_LINES} lines) ---\n{text}")
            return "\n".join(parts) or "(no worker pods left to show logs of)"
        except ApiException as e:
            logger.warning("Could not read the logs of TFJob %s's workers: %s %s", name,
                           e.status, e.reason)
            return f"(worker logs unreadable: {e.status} {e.reason}; see deploy/tfjob-rbac.yaml)"

    def _call(self, method, *args, what: str, absent: bool = False, **kwargs):
        """Calls the API with a time limit, turning the refusals a cluster set-up causes into
        errors that say what to install or grant.

        Raises:
          _Conflict: HTTP 409 (the object exists).
          _Absent: HTTP 404 and ``absent`` (the caller expects that it may be gone).
        """
        from kubernetes.client.exceptions import ApiException

        try:
            return method(*args, _request_timeout=self.request_seconds, **kwargs)
        except ApiException as e:
            if e.status == 409:
                raise _Conflict() from e
            if e.status == 404 and absent:
                raise _Absent() from e
            if e.status == 403:
                fix = ("grant the step's service account the Role in deploy/tfjob-rbac.yaml "
                       f"(kubectl apply -n {self.namespace} -f deploy/tfjob-rbac.yaml)")
            elif e.status == 404 and KIND in what:
                fix = ("install the Kubeflow Training Operator (kubeflow.org/v1 TFJob); see the "
                       "README's Scaling section")
            elif e.status == 404:
                fix = "run this in the pipeline step's pod (KFP_POD_NAME or HOSTNAME names it)"
            else:
                fix = f"see the API server's answer: {str(e.body)[:300]}"
            raise RuntimeError(f"train_workers > 1: could not {what} in namespace "
                               f"{self.namespace}: {e.status} {e.reason}. Fix: {fix}.") from e


class _Absent(Exception):
    """The object does not exist (HTTP 404), where the caller allows that."""


class _Conflict(Exception):
    """The job already exists (HTTP 409)."""


def _in_cluster_client():
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException as e:
        raise RuntimeError(
            "train_workers > 1 submits a TFJob from inside the cluster (the pipeline step's "
            f"pod), but this process has no in-cluster Kubernetes credentials: {e}. Run it "
            "as a pipeline step, or use train_workers=1.") from e
    return client.ApiClient()


def _own_namespace() -> str:
    try:
        with open(_NAMESPACE_FILE, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError as e:
        raise RuntimeError(f"train_workers > 1: {_NAMESPACE_FILE} is missing, so this is not a "
                           "Kubernetes pod; pass the namespace or use train_workers=1.") from e


#: Where the workers can share ``model_dir``: TensorFlow writes and reads the checkpoints
#: there itself (``tf.io.gfile``), and TF 2.21 has no ``s3://`` / ``minio://`` file system.
MODEL_DIR_SCHEMES = ("gs://",)


def check_shared(model_dir: str, inputs: dict) -> None:
    """Refuses what the workers, other pods, could not share: a ``model_dir`` off
    :data:`MODEL_DIR_SCHEMES`, or a local input.

    Args:
      inputs: what each input is (``{"train data": uri, ...}``); empty ones are skipped.
    """
    if not model_dir.startswith(MODEL_DIR_SCHEMES):
        raise ValueError(
            f"train_workers > 1: the workers share checkpoints through model_dir {model_dir!r}, "
            f"which TensorFlow writes itself and can only on {', '.join(MODEL_DIR_SCHEMES)} (TF "
            "2.21 has no s3:// or minio://; a local path is this pod's only). Use a pipeline "
            "root on gs:// or train_workers=1.")
    for what, uri in inputs.items():
        if uri and not filesystems.is_remote(uri):
            raise ValueError(
                f"train_workers > 1 trains on other pods, which cannot see the local path "
                f"{uri!r} ({what}). Put it on a shared store (gs://, s3://, minio://) or use "
                "train_workers=1.")


def train_with_tfjob(cfg, config_uri: str, model_dir: str, workers: int, *,
                     train_uri: str = "", eval_uri: str = "", warm_start: str = "",
                     without_kd: bool = False, num_steps: int = 0, mixed_precision: bool = False,
                     exclude_fold: Sequence = (), kd_overrides: Mapping = MappingProxyType({}),
                     runner: Optional[TFJobRunner] = None) -> TrainResult:
    """Trains ``config_uri`` on a TFJob of ``workers`` workers into ``model_dir``.

    Everything is checked before the job is submitted, so a mistake fails in seconds, not
    after N GPU pods were scheduled.

    Args:
      cfg: the loaded config (checked: early stopping is single-worker only).
      exclude_fold: ``(key, K, k)``: a cross-fitting fold teacher (``train_args``).
      kd_overrides: a kd sweep variant, already applied to ``cfg`` (``train_args``).
      runner: default: a :class:`TFJobRunner` with the pod's in-cluster credentials.

    Returns:
      The chief's :class:`TrainResult`, read from the export's ``recdistill.json``.
    """
    if cfg.train_config.HasField("early_stopping"):
        raise ValueError(f"{config_uri}: train_config.early_stopping is single-worker only, so "
                         f"it cannot train on {workers} workers. Remove early_stopping or use "
                         "train_workers=1.")
    check_shared(model_dir, {"config": config_uri, "train data": train_uri or cfg.train_input_path,
                             "eval data": eval_uri or cfg.eval_input_path,
                             "warm_start": warm_start})
    args = train_args(config_uri, model_dir, train_uri=train_uri, eval_uri=eval_uri,
                      warm_start=warm_start, without_kd=without_kd, num_steps=num_steps,
                      mixed_precision=mixed_precision, exclude_fold=exclude_fold,
                      kd_overrides=kd_overrides)
    (runner or TFJobRunner()).run(job_name(model_dir), args, workers)
    export = exported.export_dir(model_dir)
    metadata = exported.read_metadata(export)
    if "training_metrics" not in metadata:
        raise FileNotFoundError(f"TFJob {job_name(model_dir)} succeeded but {export} has no "
                                f"{exported.METADATA_FILE} with training metrics: the chief "
                                "did not export. Check the workers' logs.")
    train_metrics = metadata["training_metrics"]
    return TrainResult(model_dir=model_dir, export_dir=export, steps=int(train_metrics["steps"]),
                       metrics={**train_metrics, **metadata.get("eval_metrics", {})})
