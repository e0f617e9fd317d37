"""The committed pipeline_pb2.py must be what protoc generates from pipeline.proto today."""

import subprocess
import sys


def test_committed_pipeline_pb2_matches_pipeline_proto():
    # In a subprocess: grpc_tools' protoc crashes when TensorFlow is loaded in the same process,
    # as it is once earlier tests have run.
    check = subprocess.run([sys.executable, "-m", "recdistill.protos.generate", "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
