"""Component: the model currently served from the push destination."""

from kfp import dsl

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def current_champion(destination: str, run_date: str) -> str:
    """Returns the export URI of the last pushed model under ``destination`` ('' if none).

    Args:
      destination: the versioned serving location (local path or gs://).
      run_date: the run's date; part of the cache key, so each day looks again.

    Returns:
      the champion's export URI, or '' before the first push.
    """
    from recdistill import steps

    return steps.current_champion(destination)
