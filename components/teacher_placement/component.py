"""Component: whether the teacher step needs a GPU node (it does not when it only copies)."""

from typing import NamedTuple

from kfp import dsl

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def teacher_placement(
    teacher_uri: str, node_selector: dict,
) -> NamedTuple("TeacherPlacement", [("gpus", int), ("node_selector", dict)]):
    """The GPU count and node selector of ``prepare_teacher``: none when it reuses a teacher.

    KFP sets a task's resources from its inputs, so the pipeline keeps one teacher task (kfp.local
    cannot merge artifacts of an If/Else with dsl.OneOf) and only its pod changes: copying an
    export needs no GPU and no GPU node.

    Args:
      teacher_uri: the teacher export to reuse, or '' (the teacher is trained).
      node_selector: the training steps' node selector (GPU nodes).

    Returns:
      gpus: 1 to train, 0 to reuse.
      node_selector: ``node_selector`` to train, {} to reuse.
    """
    import collections

    placement = collections.namedtuple("TeacherPlacement", ["gpus", "node_selector"])
    return placement(0, {}) if teacher_uri else placement(1, node_selector)
