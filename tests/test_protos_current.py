"""The committed pipeline_pb2.py must be what protoc generates from pipeline.proto today."""

from recdistill.protos import generate


def test_committed_pipeline_pb2_matches_pipeline_proto():
    assert generate.GENERATED.read_text() == generate.generated_source(), (
        "recdistill/protos/pipeline_pb2.py is stale: run "
        "`.venv/bin/python -m recdistill.protos.generate` and commit both files")
