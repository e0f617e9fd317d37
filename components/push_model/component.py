"""Component: push a blessed model to the versioned serving location."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def push_model(model: Input[Model], evaluation: Input[Artifact], destination: str,
               run_date: str, keep: int = 0) -> str:
    """Copies the model to ``<destination>/<version>/`` atomically; returns that URI.

    Args:
      model: the blessed student.
      evaluation: the evaluate step's output (its metrics.json must say blessed).
      destination: the serving base directory TF Serving polls (local path or gs://).
      run_date: the run's date; part of the cache key.
      keep: versions to keep (0 = all); older ones are deleted after the new one is complete.

    Returns:
      the pushed version's URI, ``<destination>/<version>``.

    Raises:
      RuntimeError: the push was refused (the reason is in the message).
    """
    from recdistill import steps

    result = steps.push_model(model.uri, destination, evaluation_dir=evaluation.uri, keep=keep)
    if not result.pushed:
        # The step runs only for a blessed model; a refusal here (e.g. the evaluation does not
        # name this model) must fail the run with the reason, not return nothing.
        raise RuntimeError(f"push to {destination} refused: {result.reason}")
    return result.version_uri
