"""The Kubeflow pipeline: wiring of ``components/`` only (no logic)."""
