"""Installs recdistill: the library, the thin KFP packages and the ``recdistill`` command.

Versions are pinned in constraints.txt; install with ``bash dev/setup.sh`` (or
``pip install -c constraints.txt -e .[test]``) so every machine resolves the same stack.
"""

from setuptools import find_packages, setup

setup(
    name="recdistill",
    version="0.1.0",
    description="Knowledge distillation for recommendation models as a Kubeflow pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["recdistill", "recdistill.*", "components", "components.*",
                                    "pipelines", "pipelines.*"],
                           exclude=["*.tests"]),
    package_data={
        "recdistill.protos": ["*.proto"],
        "pipelines": ["*.yaml"],
    },
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.15,<4",
        "kfp==2.17.*",
        "kfp-kubernetes==2.17.*",
        "kubernetes>=30.1,<31",  # recdistill.training.tfjob (kfp depends on it too)
        "apache-beam[gcp]==2.77.*",
        "tfx-bsl==1.21.*",
        "google-cloud-storage>=3.17,<4",
        "protobuf>=6.31,<7",
        "numpy>=2,<2.5",
        "pyarrow>=25,<26",
        "pandas>=2",
        "scikit-learn>=1.5",
        "scipy>=1.13",
        "matplotlib>=3.9",
        "PyYAML>=6",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2",
            "pytest-xdist>=3.8",
            "grpcio-tools>=1.74",
            "gcp-storage-emulator>=2026.7",
            "moto[s3]>=5.2,<6",
            "flask>=3",
            "flask-cors>=6",
            "dask[distributed]>=2026.8",
            "ydf==0.16.1",
            "ydf-tf==2.21.0.post1",
        ],
        "gbdt": ["ydf==0.16.1", "ydf-tf==2.21.0.post1"],
        # Object-store servers for tests on loopback: GCS, and S3 (moto's server needs flask).
        "emulator": ["gcp-storage-emulator>=2026.7", "moto[s3]>=5.2,<6", "flask>=3",
                     "flask-cors>=6"],
        "dask": ["dask[distributed]>=2026.8"],
        "proto": ["grpcio-tools>=1.74"],
        # kfp.local.DockerRunner (dev/container_check.sh runs the pipeline in the images).
        "docker": ["docker>=7.1,<8"],
    },
    entry_points={"console_scripts": ["recdistill=recdistill.cli:main"]},
)
