"""submit/schedule against a loopback HTTP server that records what kfp.Client sends."""

import http.server
import json
import threading

import pytest
import yaml

from pipelines import client
from pipelines.compile import DEFAULT_OUTPUT
from recdistill import cli


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers the KFP v2beta1 API calls the client makes, and records each request."""

    requests: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, body))
        return body

    def do_GET(self):
        self._record()
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiments": [], "total_size": 0})
        else:
            self._reply({})

    def do_POST(self):
        body = self._record()
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
        elif self.path.startswith("/apis/v2beta1/recurringruns"):
            self._reply({"recurring_run_id": "rr-1", "display_name": body["display_name"]})
        elif self.path.startswith("/apis/v2beta1/runs"):
            self._reply({"run_id": "run-1", "display_name": body["display_name"]})
        else:
            self.send_error(404)


@pytest.fixture
def kfp_api():
    _Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    server.shutdown()
    server.server_close()


PARAMS = {"student_config": "gs://b/student.config", "train_data": "gs://b/clicks/dt={date}/",
          "eval_data": "gs://b/eval/dt={date}/", "push_destination": "gs://b/serving"}


def _posts(requests, prefix):
    return [body for method, path, body in requests
            if method == "POST" and path.startswith(prefix)]


def test_submit_creates_one_run_of_the_compiled_pipeline(kfp_api):
    host, requests = kfp_api
    run_id = client.submit(host, PARAMS, experiment="kd-exp", run_name="daily-1")

    assert run_id == "run-1"
    [experiment] = _posts(requests, "/apis/v2beta1/experiments")
    assert experiment["display_name"] == "kd-exp"
    [run] = _posts(requests, "/apis/v2beta1/runs")
    assert run["display_name"] == "daily-1"
    assert run["experiment_id"] == "exp-1"
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "recdistill-kd"
    assert run["runtime_config"]["parameters"] == PARAMS


def test_schedule_creates_a_daily_recurring_run_without_catchup(kfp_api):
    host, requests = kfp_api
    job_id = client.schedule(host, "0 0 3 * * *", PARAMS, experiment="kd-exp")

    assert job_id == "rr-1"
    [job] = _posts(requests, "/apis/v2beta1/recurringruns")
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert int(job["max_concurrency"]) == 1
    assert job["no_catchup"] is True
    assert job["experiment_id"] == "exp-1"
    assert job["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "recdistill-kd"
    assert job["runtime_config"]["parameters"] == PARAMS


def test_schedule_rejects_a_five_field_cron_before_any_request(kfp_api):
    host, requests = kfp_api
    with pytest.raises(ValueError, match="KFP needs 6 .*'0 0 3 \\* \\* \\*'"):
        client.schedule(host, "0 3 * * *", PARAMS)
    assert requests == []


def test_cli_submit_parses_key_value_parameters(kfp_api, capsys):
    host, requests = kfp_api
    argv = ["submit", "--host", host, "--experiment", "cli-exp"]
    argv += [f"{k}={v}" for k, v in PARAMS.items()] + ["num_steps=50", 'beam_args=["--a=1"]']
    assert cli.main(argv) == 0

    # strip: a kfp.local run earlier in this process may have left kfp's indenting print
    assert capsys.readouterr().out.splitlines()[-1].strip() == "run-1"
    [run] = _posts(requests, "/apis/v2beta1/runs")
    assert run["runtime_config"]["parameters"] == {**PARAMS, "num_steps": 50,
                                                   "beam_args": ["--a=1"]}
    pipeline_spec, platform_spec = yaml.safe_load_all(DEFAULT_OUTPUT.read_text())
    assert run["pipeline_spec"]["pipeline_spec"] == pipeline_spec
    assert run["pipeline_spec"]["platform_spec"] == platform_spec
