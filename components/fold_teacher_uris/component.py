"""Component: the fold teachers' URIs, as a parameter the soft-label step can take."""

from typing import List

from kfp import dsl
from kfp.dsl import Input, Model

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def fold_teacher_uris(teachers: Input[List[Model]] = None) -> List[str]:
    """Lists the URIs of the collected fold teachers ([] without cross-fitting).

    A parameter, because a ``dsl.Collected`` list made inside a condition can only leave it
    through ``dsl.OneOf``, which kfp.local resolves for parameters only.

    Args:
      teachers: the fold teachers (``dsl.Collected`` over the folds), or none.

    Returns:
      Their URIs (the soft-label job orders them by the fold each one records).
    """
    return [teacher.uri for teacher in teachers or []]
