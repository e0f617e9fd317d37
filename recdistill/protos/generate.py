"""Compile ``pipeline.proto`` into ``pipeline_pb2.py`` with the pinned protoc from grpcio-tools.

The generated module is committed so that importing recdistill needs no compiler; the test
suite runs :func:`generated_source` and fails if the committed file is stale.

Usage: ``python -m recdistill.protos.generate [--check]``.
"""

import argparse
import pathlib
import sys
import tempfile

PROTO_DIR = pathlib.Path(__file__).resolve().parent
#: The proto is compiled relative to the folder above ``recdistill/`` so the generated module
#: calls itself ``recdistill.protos.pipeline_pb2``: messages then pickle (Beam ships configs
#: to workers) and the descriptor's file name is unique in the global pool.
PACKAGE_ROOT = PROTO_DIR.parents[1]
PROTO = PROTO_DIR / "pipeline.proto"
GENERATED = PROTO_DIR / "pipeline_pb2.py"


def generated_source() -> str:
    """Runs protoc on ``pipeline.proto`` and returns the Python it generates."""
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as out:
        status = protoc.main([
            "protoc",
            f"--proto_path={PACKAGE_ROOT}",
            f"--proto_path={include}",
            f"--python_out={out}",
            str(PROTO),
        ])
        if status != 0:
            raise RuntimeError(f"protoc failed on {PROTO} with status {status}")
        return (pathlib.Path(out) / GENERATED.relative_to(PACKAGE_ROOT)).read_text()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed pipeline_pb2.py is not current")
    args = parser.parse_args(argv)
    source = generated_source()
    if args.check:
        current = GENERATED.exists() and GENERATED.read_text() == source
        if not current:
            print(f"{GENERATED} is stale: run python -m recdistill.protos.generate", file=sys.stderr)
        return 0 if current else 1
    GENERATED.write_text(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
