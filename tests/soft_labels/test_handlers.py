"""TeacherModelHandler, soft-label specs and the teacher/data checks, against a tiny teacher."""

import numpy as np
import pyarrow as pa
import pytest

from soft_label_helpers import expected_logits, make_rows, student_config
from recdistill import exported
from recdistill.protos import pipeline_pb2
from recdistill.soft_labels import handlers

_FieldType = pipeline_pb2.DatasetConfig.FieldType


def _batch(n=7, seed=0) -> pa.RecordBatch:
    rows = make_rows(n, seed)
    return pa.RecordBatch.from_pydict({k: pa.array(list(v)) for k, v in rows.items()})


@pytest.fixture(scope="module")
def model(teacher):
    return exported.load_exported(teacher)


def test_run_inference_scores_each_record_batch_in_one_call(teacher, model):
    handler = handlers.TeacherModelHandler(teacher, batch_size=4096)
    batches = [_batch(7, 0), _batch(3, 1)]
    results = list(handler.run_inference(batches, model))
    assert [r.example for r in results] == batches
    for batch, result in zip(batches, results):
        rows = batch.to_pydict()
        want = expected_logits(rows["user_id"], rows["cate_id"], rows["price"])
        np.testing.assert_allclose(result.inference["logits"], want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(result.inference["probs"], 1 / (1 + np.exp(-want)), rtol=1e-6)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}
    assert handler.get_num_bytes(batches) == batches[0].nbytes + batches[1].nbytes


def test_handler_rejects_non_positive_batch_size(teacher):
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        handlers.TeacherModelHandler(teacher, batch_size=0)


def test_spec_converts_between_logits_and_probabilities():
    logits = np.array([-30.0, -2.0, 0.0, 1.5, 30.0])
    probs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    to_prob = handlers.SoftLabelSpec("s", "logits", "logits", as_logits=False, dtype=np.float64)
    np.testing.assert_allclose(to_prob.values({"logits": logits}),
                               [9.357622968839299e-14, 0.11920292202211755, 0.5,
                                0.8175744761936437, 0.9999999999999065])
    to_logit = handlers.SoftLabelSpec("s", "probs", "probs", as_logits=True, dtype=np.float64)
    got = to_logit.values({"probs": probs})
    # 0 and 1 are clipped to 1e-7 / 1 - 1e-7: logit(1e-7) = ln(1e-7 / (1 - 1e-7)).
    np.testing.assert_allclose(got, [-16.11809555, -2.19722458, 0.0, 2.19722458, 16.11809555],
                               rtol=1e-6)
    same = handlers.SoftLabelSpec("s", "logits", "logits", as_logits=True)
    assert same.values({"logits": logits.reshape(-1, 1)}).dtype == np.float32
    np.testing.assert_array_equal(same.values({"logits": logits.reshape(-1, 1)}),
                                  logits.astype(np.float32))


def test_spec_rejects_an_output_with_several_values_per_row():
    spec = handlers.SoftLabelSpec("kd_soft", "logits_2d", "logits", as_logits=True)
    with pytest.raises(ValueError, match=r"'logits_2d' has shape \(3, 2\).*kd.teacher_pred_name"):
        spec.values({"logits_2d": np.zeros((3, 2))})


def test_soft_label_specs_follow_the_kd_blocks(model):
    cfg = student_config(label_is_logits=False)
    (spec,) = handlers.soft_label_specs(cfg, model)
    # kd_soft is declared DOUBLE in the EasyRec sample; pred_name 'logits' names the output.
    assert spec == handlers.SoftLabelSpec("kd_soft", "logits", "logits", as_logits=False,
                                          dtype=np.float64)
    cfg = student_config(teacher_pred_name="probs")
    assert handlers.soft_label_specs(cfg, model)[0].teacher_output == "probs"


def test_soft_label_specs_list_the_teacher_outputs_when_one_is_unknown(model):
    cfg = student_config(teacher_pred_name="logits_ctr")
    with pytest.raises(ValueError, match=r"kd\[0\]: teacher output 'logits_ctr'.*valid: "
                                         r"logits, logits_2d, probs"):
        handlers.soft_label_specs(cfg, model)


def test_soft_label_specs_reject_a_non_float_soft_label_field(model):
    cfg = student_config()
    cfg.data_config.input_fields[-1].input_type = _FieldType.STRING
    with pytest.raises(ValueError, match="'kd_soft' has input_type STRING.*FLOAT or DOUBLE"):
        handlers.soft_label_specs(cfg, model)


def test_check_teacher_inputs_lists_expected_and_present_columns(model):
    fields = [f for f in student_config().data_config.input_fields if f.input_name != "cate_id"]
    with pytest.raises(ValueError) as err:
        handlers.check_teacher_inputs(model, fields, "data/train")
    message = str(err.value)
    assert "needs input columns ['cate_id']" in message
    assert "cate_id:string, price:int64, user_id:string" in message
    assert "'user_id'" in message and "'cate_id'" not in message.split("the data has")[1]


def test_check_teacher_inputs_rejects_a_mistyped_column(model):
    fields = list(student_config().data_config.input_fields)
    for field in fields:
        if field.input_name == "price":
            field.input_type = _FieldType.STRING
    with pytest.raises(ValueError, match=r"data/train: input columns price \(teacher int64, "
                                         r"data STRING\) have the wrong type.*price:int64"):
        handlers.check_teacher_inputs(model, fields, "data/train")
    fields = list(student_config().data_config.input_fields)
    handlers.check_teacher_inputs(model, fields, "data/train")  # INT32 feeds an int64 input


@pytest.mark.slow
def test_handler_runs_in_beam_run_inference(teacher):
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    batches = [_batch(5, 0), _batch(4, 1)]
    want = [[round(float(x), 4) for x in expected_logits(b.column("user_id").to_pylist(),
                                                         b.column("cate_id").to_pylist(),
                                                         b.column("price").to_pylist())]
            for b in batches]
    with beam.Pipeline(options=PipelineOptions(flags=["--runner=DirectRunner"])) as p:
        got = (p | beam.Create(batches)
               | RunInference(handlers.TeacherModelHandler(teacher))
               | beam.Map(lambda r: [round(float(x), 4) for x in r.inference["logits"]]))
        assert_that(got, equal_to(want))


def test_column_tensor_cuts_strings_out_of_the_arrow_buffers():
    import tensorflow as tf

    strings = pa.array(["ab", "", "ééx", "zzzzz", "q"])
    cases = [strings, strings.slice(1, 3), strings.slice(5, 0),
             strings.cast(pa.large_string()).slice(2),
             pa.chunked_array([strings.slice(0, 2), strings.slice(3)])]
    for column in cases:
        tensor = handlers.column_tensor(column, tf.string)
        assert isinstance(tensor, tf.Tensor) and tensor.dtype == tf.string
        assert [v.decode() for v in tensor.numpy().tolist()] == column.to_pylist()
    # Nulls and numbers take the numpy road; the model casts and checks those.
    with_null = handlers.column_tensor(pa.array(["x", None]), tf.string)
    assert isinstance(with_null, np.ndarray) and with_null.tolist() == ["x", None]
    numbers = handlers.column_tensor(pa.array([1, 2, 3], pa.int64()), tf.float32)
    assert isinstance(numbers, np.ndarray) and numbers.tolist() == [1, 2, 3]


def test_predict_batch_on_a_sliced_batch_matches_predict_on_numpy_columns(model):
    batch = _batch(9, 2).slice(3, 5)  # Arrow offsets not starting at 0
    got = handlers.predict_batch(model, batch)
    want = model.predict({name: batch.column(name).to_numpy(zero_copy_only=False)
                          for name in model.inputs})
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    rows = batch.to_pydict()
    np.testing.assert_allclose(got["logits"], expected_logits(rows["user_id"], rows["cate_id"],
                                                              rows["price"]), rtol=1e-6,
                               atol=1e-6)
