"""Tests for recdistill.data.movielens, on the real ML-100K files in <repo>/../shared/data."""

import csv
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from google.protobuf import text_format

from recdistill.data import movielens
from recdistill.protos import pipeline_pb2

REPO = pathlib.Path(__file__).resolve().parents[2]
ML_100K = REPO.parent / "shared" / "data" / "ml-100k"
COLUMNS = ["user_id", "age", "gender", "occupation", "item_id", "genres", "year",
           "nearby_rating", "clk"]
GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]

needs_ml_100k = pytest.mark.skipif(
    not (ML_100K / "u.data").is_file(),
    reason=f"ML-100K not found at {ML_100K}; unzip "
           "https://files.grouplens.org/datasets/movielens/ml-100k.zip there to run these tests")


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(zip(COLUMNS, row, strict=True)) for row in csv.reader(f)]


@pytest.fixture(scope="module")
def raw():
    """The raw files, parsed line by line (independently of the module under test)."""
    ratings = {}
    for line in (ML_100K / "u.data").read_text().splitlines():
        user, item, rating, ts = (int(x) for x in line.split("\t"))
        ratings[(user, item)] = (rating, ts)
    users = {int(line.split("|")[0]): line.split("|")
             for line in (ML_100K / "u.user").read_text().splitlines()}
    items = {int(line.split("|")[0]): line.split("|")
             for line in (ML_100K / "u.item").read_text(encoding="latin-1").splitlines()}
    return ratings, users, items


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml")
    data = movielens.prepare_movielens(str(ML_100K), str(out))
    return data, _rows(data.train_path), _rows(data.eval_path)


def test_missing_file_is_named_with_where_to_get_ml_100k(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n")
    with pytest.raises(FileNotFoundError, match=r"u\.user: missing\. Download ML-100K from "
                                                r"https://files\.grouplens\.org"):
        movielens.prepare_movielens(str(tmp_path), str(tmp_path / "out"))


def test_a_malformed_rating_names_the_file_row_and_field(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n1\t2\tfive\t881250950\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n")
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url" + "|0" * 19 + "\n")
    with pytest.raises(ValueError, match=r"u\.data: row 2 field 'rating' must be an integer, "
                                         r"got 'five'"):
        movielens.prepare_movielens(str(tmp_path), str(tmp_path / "out"))


def test_a_tiny_hand_made_log_is_split_labelled_and_joined(tmp_path):
    # Three ratings of user 1 (one tie at t=20) and one of user 2; the last 25% by time is eval.
    (tmp_path / "u.data").write_text("1\t2\t4\t20\n2\t1\t5\t40\n1\t1\t3\t20\n1\t2\t1\t10\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    flags = ["0"] * 19
    flags[1] = flags[16] = "1"
    (tmp_path / "u.item").write_text("1|A (1995)|01-Jan-1995||u|" + "|".join(flags) + "\n"
                                     "2|B|||u" + "|0" * 19 + "\n")
    data = movielens.prepare_movielens(str(tmp_path), str(tmp_path / "out"), eval_fraction=0.25)
    train, eval_ = _rows(data.train_path), _rows(data.eval_path)
    # Time order, ties by user then item: (1,2,t10) (1,1,t20) (1,2,t20) | (2,1,t40).
    assert [(r["user_id"], r["item_id"], r["clk"]) for r in train] == [
        ("1", "2", "0"), ("1", "1", "0"), ("1", "2", "1")]
    assert [(r["user_id"], r["item_id"], r["clk"]) for r in eval_] == [("2", "1", "1")]
    # nearby_rating: mean of the user's other train ratings; user 2's only row gets the train
    # mean (1 + 3 + 4) / 3.
    assert [float(r["nearby_rating"]) for r in train] == [3.5, 2.5, 2.0]
    assert float(eval_[0]["nearby_rating"]) == pytest.approx(8 / 3, abs=1e-4)
    assert (eval_[0]["age"], eval_[0]["gender"], eval_[0]["occupation"]) == ("53.0", "F", "other")
    assert (eval_[0]["genres"], eval_[0]["year"]) == ("Action|Thriller", "1995.0")
    assert (train[0]["genres"], train[0]["year"]) == ("unknown", "0.0")


@needs_ml_100k
def test_rows_split_80_20(prepared):
    _, train, eval_ = prepared
    assert (len(train), len(eval_)) == (80_000, 20_000)


@needs_ml_100k
def test_split_is_time_ordered(prepared, raw):
    ratings, _, _ = raw
    _, train, eval_ = prepared
    ts = lambda rows: np.array([ratings[(int(r["user_id"]), int(r["item_id"]))][1] for r in rows])
    train_ts, eval_ts = ts(train), ts(eval_)
    assert np.all(np.diff(train_ts) >= 0) and np.all(np.diff(eval_ts) >= 0)
    assert train_ts.max() <= eval_ts.min()
    all_ts = np.sort([t for _, t in ratings.values()])
    assert train_ts.max() == all_ts[79_999]
    assert len({(r["user_id"], r["item_id"]) for r in train + eval_}) == 100_000


@needs_ml_100k
def test_label_is_rating_at_least_four(prepared, raw):
    ratings, _, _ = raw
    _, train, eval_ = prepared
    for r in train + eval_:
        assert r["clk"] == str(int(ratings[(int(r["user_id"]), int(r["item_id"]))][0] >= 4))
    share = np.mean([int(r["clk"]) for r in train + eval_])
    assert share == pytest.approx(np.mean([r >= 4 for r, _ in ratings.values()]))
    assert share == pytest.approx(0.55375)


@needs_ml_100k
def test_user_and_item_features_match_the_raw_files(prepared, raw):
    _, users, items = raw
    _, train, eval_ = prepared
    rows = train + eval_
    for index in (0, 1, 12_345, 79_999, 80_000, 99_999):
        row = rows[index]
        user = users[int(row["user_id"])]
        assert (float(row["age"]), row["gender"], row["occupation"]) == (
            float(user[1]), user[2], user[3])
        item = items[int(row["item_id"])]
        genres = [g for g, flag in zip(GENRES, item[5:]) if flag == "1"]
        assert row["genres"] == "|".join(genres)
        assert float(row["year"]) == (float(item[2][-4:]) if item[2] else 0.0)


@needs_ml_100k
def test_nearby_rating_averages_the_users_five_ratings_either_side(prepared, raw):
    ratings, _, _ = raw
    _, train, _ = prepared
    user = train[500]["user_id"]
    own = sorted((ratings[(int(user), int(r["item_id"]))][1], int(r["item_id"]))
                 for r in train if r["user_id"] == user)
    by_item = {r["item_id"]: float(r["nearby_rating"]) for r in train if r["user_id"] == user}
    for k in (0, len(own) // 2, len(own) - 1):
        window = own[max(0, k - 5): k] + own[k + 1: k + 6]
        expected = np.mean([ratings[(int(user), item)][0] for _, item in window])
        assert by_item[str(own[k][1])] == pytest.approx(expected, abs=1e-4)


@needs_ml_100k
def test_configs_read_the_written_columns_and_load(prepared):
    data, _, _ = prepared
    with open(data.student_config, encoding="utf-8") as f:
        student = text_format.Parse(f.read(), pipeline_pb2.EasyRecConfig())
    with open(data.teacher_config, encoding="utf-8") as f:
        teacher = text_format.Parse(f.read(), pipeline_pb2.EasyRecConfig())
    assert [f.input_name for f in teacher.data_config.input_fields] == COLUMNS
    assert [f.input_name for f in student.data_config.input_fields] == COLUMNS + ["kd_soft"]
    assert "nearby_rating" in teacher.model_config.feature_groups[0].feature_names
    assert all("nearby_rating" not in g.feature_names for g in student.model_config.feature_groups)
    from recdistill import config
    for path in (data.teacher_config, data.student_config, data.student_nokd_config):
        assert config.load_config(path).train_input_path.startswith(data.out_dir)
