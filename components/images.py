"""Container images the components run in (``recdistill compile --image`` replaces them)."""

#: CPU image: the pinned stack + recdistill (Beam job, evaluate, push, small steps).
RUNTIME_IMAGE = "ghcr.io/recdistill/recdistill-runtime:0.1.0"
#: GPU image: a TF 2.21 GPU base + recdistill (teacher and student training).
TRAINER_IMAGE = "ghcr.io/recdistill/recdistill-trainer:0.1.0"
