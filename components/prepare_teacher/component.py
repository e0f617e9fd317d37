"""Component: the teacher model, reused from a URI or trained from its config."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.images import TRAINER_IMAGE


@dsl.component(base_image=TRAINER_IMAGE, install_kfp_package=False)
def prepare_teacher(config: str, teacher_uri: str, train_data: Input[Dataset],
                    eval_data: Input[Dataset], run_date: str, teacher: Output[Model],
                    num_steps: int = 0, workers: int = 1, validation: Input[Dataset] = None,
                    validation_fraction: float = 0.0):
    """Provides the teacher: copies ``teacher_uri`` when given, else trains ``config``.

    Args:
      config: URI of the teacher's EasyRec config (used when ``teacher_uri`` is '').
      teacher_uri: an existing teacher export (e.g. the production ranking model), or ''.
        ``{date}``/``{previous_date}`` are filled from the run date, and a versioned push
        folder gives its champion: ``gs://b/teacher/{previous_date}`` is yesterday's teacher.
      train_data: the training table (raw, without soft labels).
      eval_data: the evaluation table.
      run_date: the run's date; part of the cache key so a new day never reuses old outputs.
      teacher: the teacher export; its ``source`` metadata says "trained" or the reused URI.
      num_steps: training steps (0 = the config's train_config.num_steps).
      workers: training pods when it trains (N > 1: a TFJob of N workers, as in train_model).
      validation: the kd sweep's validation rows: with ``validation_fraction`` > 0 a trained
        teacher evaluates (early stopping) on them instead of ``eval_data`` (as in train_model).
      validation_fraction: the split's fraction; 0: ``eval_data`` is used.
    """
    from recdistill import steps

    steps.prepare_teacher(config, teacher.uri, teacher_uri=teacher_uri, train_uri=train_data.uri,
                          eval_uri=eval_data.uri, num_steps=num_steps, run_date=run_date,
                          workers=workers,
                          validation_uri=(validation.uri if validation is not None
                                          and validation_fraction > 0 else ""))
    teacher.metadata["source"] = teacher_uri or "trained"
