"""Unit test of teacher_placement: a reused teacher needs no GPU and no GPU node."""

from components.teacher_placement.component import teacher_placement

GPU_NODES = {"cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_a_trained_teacher_gets_one_gpu_on_the_gpu_nodes():
    assert tuple(teacher_placement.python_func(teacher_uri="", node_selector=GPU_NODES)) == \
        (1, GPU_NODES)


def test_a_reused_teacher_gets_no_gpu_and_no_node_selector():
    assert tuple(teacher_placement.python_func(teacher_uri="gs://b/teacher/3",
                                               node_selector=GPU_NODES)) == (0, {})
