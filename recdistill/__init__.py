"""recdistill: knowledge distillation for recommendation models, as a Kubeflow pipeline.

The library holds all behaviour and knows nothing about Kubeflow: ``components/`` and
``pipelines/`` wrap it, ``recdistill.cli`` offers the same verbs on one machine.
"""

__version__ = "0.1.0"
