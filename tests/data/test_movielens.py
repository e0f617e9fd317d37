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
           "genre_like_rate", "nearby_rating", "clk"]
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
    # User 1 rates movies 1, 2, 3 (2 and 3 tie at t=20), user 2 rates 4, 3, 1; the last 25% of
    # each user's ratings (one each, ties by item) is eval.
    (tmp_path / "u.data").write_text("1\t2\t4\t20\n2\t1\t5\t40\n1\t3\t2\t20\n1\t1\t5\t10\n"
                                     "2\t4\t3\t1\n2\t3\t1\t5\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")

    def item(number, title, date, *genres):
        flags = ["1" if g in genres else "0" for g in GENRES]
        return f"{number}|{title}|{date}||u|" + "|".join(flags) + "\n"

    (tmp_path / "u.item").write_text(item(1, "A (1995)", "01-Jan-1995", "Action", "Thriller")
                                     + item(2, "B", "01-Jan-1980", "Action")
                                     + item(3, "C", "01-Jan-1990", "Action", "Thriller")
                                     + item(4, "D", ""))
    data = movielens.prepare_movielens(str(tmp_path), str(tmp_path / "out"), eval_fraction=0.25)
    train, eval_ = _rows(data.train_path), _rows(data.eval_path)
    # Both files in time order, ties by user then item.
    assert [(r["user_id"], r["item_id"], r["clk"]) for r in train] == [
        ("2", "4", "0"), ("2", "3", "0"), ("1", "1", "1"), ("1", "2", "1")]
    assert [(r["user_id"], r["item_id"], r["clk"]) for r in eval_] == [
        ("1", "3", "0"), ("2", "1", "1")]
    # nearby_rating: mean of the user's other ratings in the same split; an only row gets the
    # train mean rating (3 + 1 + 5 + 4) / 4.
    assert [float(r["nearby_rating"]) for r in train] == [1.0, 3.0, 4.0, 5.0]
    assert [float(r["nearby_rating"]) for r in eval_] == [3.25, 3.25]
    # genre_like_rate: (likes + 2 * 0.5) / (ratings + 2) over the movie's genres, from the
    # user's earlier train ratings (train rows) or all of them (eval rows). Movie 2 (Action)
    # follows a liked Action|Thriller movie; eval movie 3 sees 3 liked genre ratings of user 1,
    # eval movie 1 two disliked ones of user 2 (movie 4's "unknown" does not count).
    assert [float(r["genre_like_rate"]) for r in train] == [0.5, 0.5, 0.5, pytest.approx(2 / 3,
                                                                                     abs=1e-4)]
    assert [float(r["genre_like_rate"]) for r in eval_] == [pytest.approx(0.8), 0.25]
    assert (eval_[1]["age"], eval_[1]["gender"], eval_[1]["occupation"]) == ("53.0", "F", "other")
    assert (eval_[1]["genres"], eval_[1]["year"]) == ("Action|Thriller", "1995.0")
    assert (train[0]["genres"], train[0]["year"]) == ("unknown", "0.0")


@needs_ml_100k
def test_rows_split_80_20(prepared):
    _, train, eval_ = prepared
    assert (len(train), len(eval_)) == (80_000, 20_000)


def _times(rows, ratings):
    return np.array([ratings[(int(r["user_id"]), int(r["item_id"]))][1] for r in rows])


@needs_ml_100k
def test_each_users_last_fifth_is_eval_and_files_are_time_ordered(prepared, raw):
    ratings, _, _ = raw
    _, train, eval_ = prepared
    train_ts, eval_ts = _times(train, ratings), _times(eval_, ratings)
    assert np.all(np.diff(train_ts) >= 0) and np.all(np.diff(eval_ts) >= 0)
    assert len({(r["user_id"], r["item_id"]) for r in train + eval_}) == 100_000
    per_user = {}
    for split, rows, ts in (("train", train, train_ts), ("eval", eval_, eval_ts)):
        for r, t in zip(rows, ts):
            per_user.setdefault(r["user_id"], {"train": [], "eval": []})[split].append(
                (t, int(r["item_id"])))
    assert len(per_user) == 943
    for user, splits in per_user.items():
        n = len(splits["train"]) + len(splits["eval"])
        assert len(splits["eval"]) == int(np.floor(n * 0.2 + 0.5)), user
        assert max(splits["train"]) < min(splits["eval"]), user  # (time, item) order


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
def test_genre_like_rate_counts_the_users_earlier_train_ratings_of_those_genres(prepared, raw):
    ratings, _, items = raw
    _, train, eval_ = prepared
    liked = np.mean([int(r["clk"]) for r in train])
    genres = {i: {g for g, flag in zip(GENRES, item[5:]) if flag == "1"} or {"unknown"}
              for i, item in items.items()}
    user = train[500]["user_id"]
    history = sorted((ratings[(int(user), int(r["item_id"]))][1], int(r["item_id"]))
                     for r in train if r["user_id"] == user)

    def expected(item, before):
        likes = count = 0
        for _, other in before:
            shared = len(genres[other] & genres[item])
            likes += shared * (ratings[(int(user), other)][0] >= 4)
            count += shared
        return (likes + 2 * liked) / (count + 2)

    by_item = {r["item_id"]: float(r["genre_like_rate"]) for r in train if r["user_id"] == user}
    for k in (0, 1, len(history) // 2, len(history) - 1):
        item = history[k][1]
        assert by_item[str(item)] == pytest.approx(expected(item, history[:k]), abs=1e-4)
    for r in [r for r in eval_ if r["user_id"] == user][:3]:
        assert float(r["genre_like_rate"]) == pytest.approx(
            expected(int(r["item_id"]), history), abs=1e-4)


@needs_ml_100k
def test_configs_read_the_written_columns_and_load(prepared):
    data, _, _ = prepared
    with open(data.student_config, encoding="utf-8") as f:
        student = text_format.Parse(f.read(), pipeline_pb2.EasyRecConfig())
    with open(data.teacher_config, encoding="utf-8") as f:
        teacher = text_format.Parse(f.read(), pipeline_pb2.EasyRecConfig())
    assert [f.input_name for f in teacher.data_config.input_fields] == COLUMNS
    assert [f.input_name for f in student.data_config.input_fields] == COLUMNS + ["kd_soft"]
    for teacher_only in ("genre_like_rate", "nearby_rating"):
        assert teacher_only in teacher.model_config.feature_groups[0].feature_names
        assert all(teacher_only not in g.feature_names
                   for g in student.model_config.feature_groups)
    from recdistill import config
    for path in (data.teacher_config, data.student_config, data.student_nokd_config):
        assert config.load_config(path).train_input_path.startswith(data.out_dir)
