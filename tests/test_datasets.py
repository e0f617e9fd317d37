"""make_dataset: values, dtypes and epochs per format; the checks that run before training."""

import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from recdistill import config as config_lib
from recdistill.data import datasets, folds, sample
from recdistill.protos import pipeline_pb2

FEATURES = {"user_id": tf.string, "age": tf.float32, "interests": tf.string,
            "price": tf.float32, "position": tf.int64}
LABELS = ["clk", "kd_soft"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The sample split into two CSV shards with a kd_soft column, plus its expected values."""
    out = tmp_path_factory.mktemp("datasets")
    written = sample.write_sample_data(str(out), rows=100)
    cfg = config_lib.load_config(written.student_config)
    with open(written.train_path) as f:
        rows = list(csv.reader(f))
    for row in rows:  # a soft label worked out from the row, as a teacher would write it
        row.append(repr(float(row[6]) / 100.0 - 1.0))
    shards = out / "shards"
    shards.mkdir()
    half = len(rows) // 2
    for index, part in enumerate((rows[:half], rows[half:])):
        with open(shards / f"part-{index:05d}.csv", "w", newline="") as f:
            csv.writer(f).writerows(part)
    names = [field.input_name for field in cfg.data_config.input_fields]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return cfg, str(shards), columns


def _collect(dataset):
    features, labels = {}, {}
    for batch_features, batch_labels in dataset:
        for target, batch in ((features, batch_features), (labels, batch_labels)):
            for name, value in batch.items():
                target.setdefault(name, []).append(value.numpy())
                assert value.shape.rank == 1
    return ({k: np.concatenate(v) for k, v in features.items()},
            {k: np.concatenate(v) for k, v in labels.items()})


def _check_values(features, labels, columns):
    assert features["user_id"].astype(str).tolist() == columns["user_id"]
    assert features["interests"].astype(str).tolist() == columns["interests"]
    np.testing.assert_array_equal(features["position"], np.array(columns["position"], np.int64))
    np.testing.assert_allclose(features["age"], np.array(columns["age"], np.float32))
    np.testing.assert_allclose(features["price"], np.array(columns["price"], np.float32))
    np.testing.assert_array_equal(labels["clk"], np.array(columns["clk"], np.float32))
    np.testing.assert_allclose(labels["kd_soft"], np.array(columns["kd_soft"], np.float32),
                               rtol=1e-6)
    assert features["position"].dtype == np.int64 and features["age"].dtype == np.float32
    assert labels["clk"].dtype == np.float32


def test_csv_shards_give_every_row_in_order_with_serving_dtypes(data):
    cfg, shards, columns = data
    dataset = datasets.make_dataset(shards, cfg, columns=FEATURES, labels=LABELS, batch_size=7,
                                    shuffle=False, num_epochs=1)
    features, labels = _collect(dataset)
    assert sorted(features) == sorted(FEATURES) and sorted(labels) == LABELS
    _check_values(features, labels, columns)


def test_csv_with_header_finds_columns_by_name(data, tmp_path):
    cfg, shards, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.with_header = True
    names = list(reversed(list(columns)))  # a different column order than input_fields
    with open(tmp_path / "part.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))
    features, labels = _collect(datasets.make_dataset(
        str(tmp_path / "part.csv"), cfg, columns=FEATURES, labels=LABELS, batch_size=16,
        shuffle=False, num_epochs=1))
    _check_values(features, labels, columns)


def _typed_table(cfg, columns):
    types = {"STRING": pa.string(), "FLOAT": pa.float32(), "DOUBLE": pa.float64(),
             "INT64": pa.int64(), "INT32": pa.int32()}
    arrays = {}
    for field in cfg.data_config.input_fields:
        kind = pipeline_pb2.DatasetConfig.FieldType.Name(field.input_type)
        values = columns[field.input_name]
        if kind != "STRING":
            values = [float(v) if "FLOAT" in kind or "DOUBLE" in kind else int(v) for v in values]
        arrays[field.input_name] = pa.array(values, types[kind])
    return pa.table(arrays)


def test_parquet_gives_the_same_values(data, tmp_path):
    cfg, _, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.input_type = cfg.data_config.ParquetInput
    table = _typed_table(cfg, columns)
    pq.write_table(table.slice(0, 20), tmp_path / "part-0.parquet")
    pq.write_table(table.slice(20), tmp_path / "part-1.parquet")
    features, labels = _collect(datasets.make_dataset(
        str(tmp_path), cfg, columns=FEATURES, labels=LABELS, batch_size=8, shuffle=False,
        num_epochs=1))
    _check_values(features, labels, columns)


def _feature(value):
    if isinstance(value, str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def test_tfrecord_gives_the_same_values(data, tmp_path):
    cfg, _, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.input_type = cfg.data_config.TFRecordInput
    table = _typed_table(cfg, columns).to_pylist()
    with tf.io.TFRecordWriter(str(tmp_path / "part-0.tfrecord.gz"), "GZIP") as writer:
        for row in table:
            feature = {name: _feature(value) for name, value in row.items()}
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    features, labels = _collect(datasets.make_dataset(
        str(tmp_path), cfg, columns=FEATURES, labels=LABELS, batch_size=8, shuffle=False,
        num_epochs=1))
    _check_values(features, labels, columns)


def test_shuffled_epochs_hold_each_row_once_per_epoch(data):
    cfg, shards, columns = data
    dataset = datasets.make_dataset(shards, cfg, columns=["user_id", "position"],
                                    labels=["kd_soft"], batch_size=5, shuffle=True,
                                    num_epochs=2, seed=3)
    _, labels = _collect(dataset)
    in_file_order = [float(np.float32(v)) for v in columns["kd_soft"]]
    assert sorted(labels["kd_soft"].tolist()) == sorted(in_file_order * 2)
    assert labels["kd_soft"][:len(in_file_order)].tolist() != in_file_order


def test_zero_epochs_repeat_forever(data):
    cfg, shards, columns = data
    dataset = datasets.make_dataset(shards, cfg, columns=["price"], labels=["clk"], batch_size=10,
                                    shuffle=False, num_epochs=0)
    batches = list(dataset.take(3 * len(columns["clk"]) // 10 + 1))
    assert len(batches) == 3 * len(columns["clk"]) // 10 + 1


def test_a_feature_column_missing_from_the_data_is_named_before_training(data, tmp_path):
    cfg, _, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.with_header = True
    names = [n for n in columns if n != "price"]
    path = tmp_path / "no_price.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))
    with pytest.raises(ValueError, match=r"no_price\.csv: column\(s\) 'price' \(read by feature "
                                         r"price\) missing from the data"):
        datasets.make_dataset(str(path), cfg, columns=FEATURES, labels=LABELS, batch_size=4,
                              shuffle=False, num_epochs=1)


def test_rows_shorter_than_input_fields_name_the_missing_trailing_columns(data, tmp_path):
    cfg, _, columns = data
    path = tmp_path / "short.csv"
    with open(path, "w", newline="") as f:  # no kd_soft column: soft labels were never added
        csv.writer(f).writerows(zip(*(columns[n] for n in list(columns)[:-1])))
    with pytest.raises(ValueError, match=r"short\.csv: column\(s\) 'kd_soft' \(a label\) missing"):
        datasets.make_dataset(str(path), cfg, columns=FEATURES, labels=LABELS, batch_size=4,
                              shuffle=False, num_epochs=1)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_soft_label_that_is_not_finite_is_named_with_file_and_row(data, tmp_path, bad):
    cfg, shards, columns = data
    values = dict(columns, kd_soft=list(columns["kd_soft"]))
    values["kd_soft"][4] = bad
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(zip(*values.values()))
    with pytest.raises(ValueError, match=r"bad\.csv: soft label column 'kd_soft' has 1 NaN/inf "
                                         r"value\(s\), first at line 5"):
        datasets.check_inputs(str(path), cfg, columns=FEATURES, labels=LABELS)


def test_an_empty_training_file_is_an_error(data, tmp_path):
    cfg, _, _ = data
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: no rows"):
        datasets.make_dataset(str(tmp_path / "empty.csv"), cfg, columns=FEATURES, labels=LABELS,
                              batch_size=4, shuffle=False, num_epochs=1)


def test_no_matching_files_is_file_not_found(data, tmp_path):
    cfg, _, _ = data
    with pytest.raises(FileNotFoundError):
        datasets.make_dataset(str(tmp_path / "nothing-*.csv"), cfg, columns=FEATURES,
                              labels=LABELS, batch_size=4, shuffle=False, num_epochs=1)


def test_gs_shards_are_staged_and_read_like_local_ones(data, gcs_bucket):
    from recdistill.data import filesystems

    cfg, shards, columns = data
    filesystems.copy_tree(shards, f"{gcs_bucket}/shards")
    features, labels = _collect(datasets.make_dataset(
        f"{gcs_bucket}/shards/part-*.csv", cfg, columns=FEATURES, labels=LABELS, batch_size=9,
        shuffle=False, num_epochs=1))
    _check_values(features, labels, columns)


def test_csv_shards_with_different_headers_are_rejected(data, tmp_path):
    cfg, _, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.with_header = True
    for index, names in enumerate((list(columns), list(reversed(list(columns))))):
        with open(tmp_path / f"part-{index}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            writer.writerows(zip(*(columns[n] for n in names)))
    with pytest.raises(ValueError, match=r"part-1\.csv: header .* differs from .*part-0\.csv"):
        datasets.make_dataset(str(tmp_path), cfg, columns=FEATURES, labels=LABELS,
                              batch_size=4, shuffle=False, num_epochs=1)


def test_shuffled_parquet_epochs_hold_each_row_once_per_epoch(data, tmp_path):
    cfg, _, columns = data
    cfg = type(cfg).FromString(cfg.SerializeToString())
    cfg.data_config.input_type = cfg.data_config.ParquetInput
    cfg.data_config.shuffle_buffer_size = 16
    table = _typed_table(cfg, columns)
    pq.write_table(table.slice(0, 30), tmp_path / "part-0.parquet")
    pq.write_table(table.slice(30), tmp_path / "part-1.parquet")
    _, labels = _collect(datasets.make_dataset(
        str(tmp_path), cfg, columns=FEATURES, labels=LABELS, batch_size=8, shuffle=True,
        num_epochs=2, seed=5))
    in_file_order = [float(np.float32(v)) for v in columns["kd_soft"]]
    assert sorted(labels["kd_soft"].tolist()) == sorted(in_file_order * 2)
    assert labels["kd_soft"][:len(in_file_order)].tolist() != in_file_order


@pytest.mark.parametrize("with_soft_labels", [True, False])
def test_an_eval_table_reads_the_same_with_or_without_its_soft_label_columns(data, tmp_path,
                                                                              with_soft_labels):
    """What an EasyRec user evaluates on may carry the soft labels (issue 15.8): read with
    the full config, asking for no soft label, both layouts give the same rows."""
    from recdistill.data import tables

    cfg, _, columns = data
    names = [n for n in columns if with_soft_labels or n != "kd_soft"]
    path = tmp_path / "eval.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(zip(*(columns[n] for n in names)))
    features, labels = _collect(datasets.make_dataset(
        str(path), cfg, columns=FEATURES, labels=["clk"], batch_size=16, shuffle=False,
        num_epochs=1, optional_fields=["kd_soft"]))
    assert features["user_id"].astype(str).tolist() == columns["user_id"]
    np.testing.assert_allclose(features["price"], np.array(columns["price"], np.float32))
    np.testing.assert_array_equal(labels["clk"], np.array(columns["clk"], np.float32))
    table = tables.read_table(str(path), cfg.data_config, fields=["position", "clk"],
                              optional_fields=["kd_soft"])
    assert table.column("position").to_pylist() == [int(v) for v in columns["position"]]
    assert table.column("clk").to_pylist() == [int(v) for v in columns["clk"]]


def test_a_file_lacking_an_optional_column_that_is_asked_for_names_it(data, tmp_path):
    from recdistill.data import tables

    cfg, _, columns = data
    path = tmp_path / "eval.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(zip(*(columns[n] for n in columns if n != "kd_soft")))
    with pytest.raises(tables.DataError, match=r"eval\.csv: file \(without a header\) has no "
                                               r"column kd_soft"):
        tables.read_table(str(path), cfg.data_config, fields=["kd_soft"],
                          optional_fields=["kd_soft"])


def test_session_grouped_batches_keep_each_session_in_one_batch(data, caplog):
    cfg, shards, columns = data
    largest = max(columns["user_id"].count(user) for user in set(columns["user_id"]))
    with caplog.at_level("INFO", logger="recdistill.data.datasets"):
        dataset = datasets.make_dataset(shards, cfg, columns=["user_id", "position"],
                                        labels=["kd_soft"], batch_size=largest + 1, shuffle=True,
                                        num_epochs=1, seed=4, session_column="user_id")
    batches = [(f["user_id"].numpy().astype(str), l["kd_soft"].numpy()) for f, l in dataset]
    assert all(len(users) <= largest + 1 for users, _ in batches) and len(batches) > 1
    seen = {}
    for index, (users, _) in enumerate(batches):
        for user in set(users):
            assert user not in seen, f"session {user} in batches {seen.get(user)} and {index}"
            seen[user] = index
    assert sorted(seen) == sorted(set(columns["user_id"]))
    soft = np.concatenate([values for _, values in batches])
    assert sorted(soft.tolist()) == sorted(float(np.float32(v)) for v in columns["kd_soft"])
    assert "of sessions kept whole" in caplog.text and "100.0%" in caplog.text


def test_an_s3_table_streams_shard_by_shard_with_the_same_rows(data, s3_bucket, monkeypatch):
    """Training input from an object store: the same rows in order as from local disk, while
    no more than two shards are ever on local disk (nothing is downloaded whole first)."""
    from recdistill.data import filesystems

    cfg, shards, columns = data
    lines = [line for path in sorted(filesystems.expand(shards))
             for line in open(path, encoding="utf-8").read().splitlines(keepends=True)]
    remote = filesystems.join(s3_bucket, "train")
    for index, part in enumerate(np.array_split(np.arange(len(lines)), 4)):
        with filesystems.open_output(filesystems.join(remote, f"part-{index}.csv")) as f:
            f.write("".join(lines[i] for i in part).encode())
    downloaded, most = [], [0]
    real = filesystems.local_shards

    def watched(uris, ahead=1):
        for path in real(uris, ahead):
            downloaded.append(path)
            most[0] = max(most[0], sum(os.path.exists(p) for p in downloaded))
            yield path

    monkeypatch.setattr(filesystems, "local_shards", watched)
    dataset = datasets.make_dataset(remote, cfg, columns=FEATURES, labels=LABELS, batch_size=7,
                                    shuffle=False, num_epochs=1)
    _check_values(*_collect(dataset), columns)
    assert len(downloaded) == 8 and most[0] <= 2, (downloaded, most)  # check pass + read pass


def test_a_remote_eval_table_may_lack_the_soft_label_columns(data, s3_bucket):
    from recdistill.data import filesystems

    cfg, shards, columns = data
    raw = "".join(",".join(line.split(",")[:-1]) + "\n"  # kd_soft is the last column
                  for path in sorted(filesystems.expand(shards))
                  for line in open(path, encoding="utf-8").read().splitlines())
    remote = filesystems.join(s3_bucket, "eval.csv")
    with filesystems.open_output(remote) as f:
        f.write(raw.encode())
    dataset = datasets.make_dataset(remote, cfg, columns=FEATURES, labels=["clk"], batch_size=7,
                                    shuffle=False, num_epochs=1, optional_fields=["kd_soft"])
    features, labels = _collect(dataset)
    assert features["user_id"].astype(str).tolist() == columns["user_id"]
    np.testing.assert_array_equal(labels["clk"], np.array(columns["clk"], np.float32))


def _table_in(fmt, cfg, columns, data_dir, tmp_path):
    """The fixture's rows as ``fmt`` files: (config, uri)."""
    cfg = type(cfg).FromString(cfg.SerializeToString())
    if fmt == "csv":
        return cfg, data_dir
    if fmt == "parquet":
        cfg.data_config.input_type = cfg.data_config.ParquetInput
        table = _typed_table(cfg, columns)
        pq.write_table(table.slice(0, 30), tmp_path / "part-0.parquet")
        pq.write_table(table.slice(30), tmp_path / "part-1.parquet")
        return cfg, str(tmp_path)
    cfg.data_config.input_type = cfg.data_config.TFRecordInput
    with tf.io.TFRecordWriter(str(tmp_path / "part-0.tfrecord.gz"), "GZIP") as writer:
        for row in _typed_table(cfg, columns).to_pylist():
            feature = {name: _feature(value) for name, value in row.items()}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return cfg, str(tmp_path)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "tfrecord"])
def test_a_fold_teacher_reads_every_row_but_its_fold_in_full_batches(data, tmp_path, fmt):
    cfg, shards, columns = data
    cfg, uri = _table_in(fmt, cfg, columns, shards, tmp_path)
    fold_of = folds.buckets(np.array(columns["user_id"]), 3, salt=folds.FOLD_SALT)
    assert set(fold_of) == {0, 1, 2}
    seen = np.zeros(len(fold_of), int)
    for k in range(3):
        dataset = datasets.make_dataset(
            uri, cfg, columns=["position", "interests"], labels=["kd_soft"], batch_size=7,
            shuffle=False, num_epochs=1, exclude_fold=datasets.ExcludedFold("user_id", 3, k))
        batches = list(dataset)
        sizes = [len(labels["kd_soft"]) for _, labels in batches]
        assert all(size == 7 for size in sizes[:-1]) and 0 < sizes[-1] <= 7
        assert all(sorted(features) == ["interests", "position"] for features, _ in batches)
        kept = np.flatnonzero(fold_of != k)
        positions = np.concatenate([f["position"].numpy() for f, _ in batches])
        np.testing.assert_array_equal(positions,
                                      np.array(columns["position"], np.int64)[kept])
        soft = np.concatenate([labels["kd_soft"].numpy() for _, labels in batches])
        np.testing.assert_allclose(soft, np.array(columns["kd_soft"], np.float32)[kept],
                                   rtol=1e-6)
        seen[kept] += 1
    assert (seen == 2).all()  # each row is left out by exactly one of the 3 fold teachers


def test_session_grouped_batches_of_a_fold_teacher_skip_the_fold(data):
    cfg, shards, columns = data
    exclude = datasets.ExcludedFold("user_id", 2, 1)
    dataset = datasets.make_dataset(shards, cfg, columns=["user_id"], labels=["clk"],
                                    batch_size=64, shuffle=True, num_epochs=1, seed=1,
                                    session_column="user_id", exclude_fold=exclude)
    users = np.concatenate([f["user_id"].numpy().astype(str) for f, _ in dataset])
    fold_of = folds.buckets(columns["user_id"], 2, salt=folds.FOLD_SALT)
    expected = [u for u, fold in zip(columns["user_id"], fold_of) if fold == 0]
    assert sorted(users.tolist()) == sorted(expected) and len(expected) < len(columns["user_id"])


def test_a_fold_teacher_key_must_be_an_integer_or_string_field(data):
    cfg, shards, _ = data
    with pytest.raises(ValueError, match=r"key column 'age' is FLOAT.*user or session id"):
        datasets.make_dataset(shards, cfg, columns=["position"], labels=["clk"], batch_size=8,
                              shuffle=False, num_epochs=1,
                              exclude_fold=datasets.ExcludedFold("age", 2, 0))
    with pytest.raises(ValueError, match=r"no field 'nope'"):
        datasets.make_dataset(shards, cfg, columns=["position"], labels=["clk"], batch_size=8,
                              shuffle=False, num_epochs=1,
                              exclude_fold=datasets.ExcludedFold("nope", 2, 0))
    with pytest.raises(ValueError, match=r"must be in \[0, 2\), got 2"):
        datasets.make_dataset(shards, cfg, columns=["position"], labels=["clk"], batch_size=8,
                              shuffle=False, num_epochs=1,
                              exclude_fold=datasets.ExcludedFold("user_id", 2, 2))


def test_a_fold_holding_every_row_is_an_error_before_training(data, tmp_path):
    cfg, shards, columns = data
    user = columns["user_id"][0]
    fold = int(folds.buckets([user], 2, salt=folds.FOLD_SALT)[0])
    with open(os.path.join(shards, "part-00000.csv")) as f:
        rows = [line for line in f if next(csv.reader([line]))[_index(cfg, "user_id")] == user]
    (tmp_path / "one_user.csv").write_text("".join(rows))
    with pytest.raises(ValueError, match=rf"every one of the {len(rows)} rows is in fold {fold} "
                                         r"of 2 by 'user_id'"):
        datasets.make_dataset(str(tmp_path / "one_user.csv"), cfg, columns=["position"],
                              labels=["clk"], batch_size=8, shuffle=False, num_epochs=0,
                              exclude_fold=datasets.ExcludedFold("user_id", 2, fold))


def _index(cfg, name):
    return [f.input_name for f in cfg.data_config.input_fields].index(name)
