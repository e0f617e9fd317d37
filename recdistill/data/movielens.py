"""MovieLens-100K as a distillation dataset: the GroupLens files -> train/eval CSVs and configs.

This module owns the translation of the raw ML-100K files (u.data, u.user, u.item) into the
same layout as the embedded sample (``recdistill.data.sample``): train.csv, eval.csv,
teacher.config, student.config and student_nokd.config, rendered by the sample's shared
``write_dataset``. MovieLens data is never copied into the repository; point ``src_dir`` at an
unpacked https://files.grouplens.org/datasets/movielens/ml-100k.zip.

It imports only ``recdistill.data.sample``.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from recdistill.data.sample import (AGE, GENDER, ITEM_GROUP, ITEM_ID, LABEL, PRIVILEGED_GROUP,
                                    RANKING_GROUP, TAG_SEPARATOR, USER_GROUP, USER_ID, Feature,
                                    SampleData, write_dataset)

logger = logging.getLogger(__name__)

OCCUPATION = "occupation"
GENRES = "genres"
YEAR = "year"
#: The ranking feature: the user's like-rate on this movie's genres (see ``prepare_movielens``).
GENRE_LIKE_RATE = "genre_like_rate"
#: How many ratings' worth of the global like-rate ``genre_like_rate`` starts from, so that a
#: user with one rating in a genre does not get a rate of exactly 0 or 1.
PRIOR_RATINGS = 2.0
#: The privileged feature: the mean rating the user gave the movies rated just before and just
#: after this one (see ``prepare_movielens``).
NEARBY_RATING = "nearby_rating"
#: A rating at or above this counts as a click.
POSITIVE_RATING = 4
#: How many ratings on each side of a row (same user, same split) ``nearby_rating`` averages.
NEARBY_WINDOW = 5
#: The 19 genre flags at the end of each u.item line, in order (ML-100K README, u.genre).
GENRE_NAMES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")
#: Written for the one movie without a release date; below every year boundary, so it gets a
#: bucket of its own.
UNKNOWN_YEAR = 0.0
DOWNLOAD_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

MOVIELENS_FEATURES = (
    Feature(USER_ID, "STRING", "IdFeature", USER_GROUP, embedding_dim=16, hash_bucket_size=2000),
    Feature(AGE, "FLOAT", "RawFeature", USER_GROUP, embedding_dim=8,
            boundaries=(18.0, 25.0, 35.0, 45.0, 50.0, 56.0)),
    Feature(GENDER, "STRING", "IdFeature", USER_GROUP, embedding_dim=4, vocab_list=("F", "M")),
    Feature(OCCUPATION, "STRING", "IdFeature", USER_GROUP, embedding_dim=8, hash_bucket_size=50),
    Feature(ITEM_ID, "STRING", "IdFeature", ITEM_GROUP, embedding_dim=16, hash_bucket_size=4000),
    Feature(GENRES, "STRING", "TagFeature", ITEM_GROUP, embedding_dim=8, hash_bucket_size=50),
    Feature(YEAR, "FLOAT", "RawFeature", ITEM_GROUP, embedding_dim=8,
            boundaries=(1900.0, 1940.0, 1960.0, 1970.0, 1980.0, 1990.0, 1995.0)),
    Feature(GENRE_LIKE_RATE, "FLOAT", "RawFeature", RANKING_GROUP, min_val=0.0, max_val=1.0),
    Feature(NEARBY_RATING, "FLOAT", "RawFeature", PRIVILEGED_GROUP, min_val=1.0, max_val=5.0),
)

_FILES = ("u.data", "u.user", "u.item")


def _read(path: str, names: list[str], sep: str, encoding: str = "utf-8") -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, names=names, header=None, encoding=encoding,
                            dtype=str, keep_default_na=False)
    except pd.errors.ParserError as e:
        raise ValueError(f"{path}: not a ML-100K file ({e}). Expected {len(names)} "
                         f"'{sep}'-separated fields per line; re-download {DOWNLOAD_URL}.") from e
    if frame.isna().any().any():
        row = int(np.flatnonzero(frame.isna().any(axis=1).to_numpy())[0])
        raise ValueError(f"{path}: row {row + 1} has fewer than {len(names)} '{sep}'-separated "
                         f"fields. Re-download {DOWNLOAD_URL}.")
    return frame


def _ints(frame: pd.DataFrame, column: str, path: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"{path}: row {row + 1} field {column!r} must be an integer, got "
                         f"{frame[column].iloc[row]!r}. Re-download {DOWNLOAD_URL}.")
    return values.to_numpy(np.int64)


def _nearby_mean(users: np.ndarray, ratings: np.ndarray, fill: float) -> np.ndarray:
    """Mean rating of the ``NEARBY_WINDOW`` rows on each side that belong to the same user.

    Rows must be sorted by user, then time. A user's only row gets ``fill``.
    """
    n = len(users)
    total, count = np.zeros(n), np.zeros(n)
    for offset in range(1, NEARBY_WINDOW + 1):
        for other in (np.arange(n) - offset, np.arange(n) + offset):
            inside = (other >= 0) & (other < n)
            other = np.clip(other, 0, n - 1)
            same = inside & (users[other] == users)
            total += np.where(same, ratings[other], 0.0)
            count += same
    return np.where(count > 0, total / np.maximum(count, 1), fill)


def _by_user(ratings: pd.DataFrame) -> pd.DataFrame:
    """The rows in each user's own order: by user, then time, ties by item."""
    return ratings.sort_values(["user", "ts", "item"], kind="stable")


def _genre_like_rate(train: pd.DataFrame, eval_: pd.DataFrame,
                     flags: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``genre_like_rate`` of every train and eval row (rows of both in their given order).

    Pooled over the movie's genres: (likes + PRIOR_RATINGS * prior) / (ratings + PRIOR_RATINGS),
    counting the user's train ratings *before* this one for a train row (time, then item), and
    all of the user's train ratings for an eval row, so no row sees its own label or the future
    of its split. ``prior`` is the like-rate of all train ratings.
    """
    prior = float((train["rating"] >= POSITIVE_RATING).mean())
    by_user = _by_user(train)
    genres = flags.loc[by_user["item"]].to_numpy(np.float64)
    liked = genres * (by_user["rating"].to_numpy() >= POSITIVE_RATING)[:, None]
    users = by_user["user"].to_numpy()
    stats = pd.DataFrame(np.hstack([liked, genres]), index=users)
    totals = stats.groupby(level=0).sum()
    before = (stats.groupby(level=0).cumsum() - stats).to_numpy()

    def rate(history: np.ndarray, own: np.ndarray) -> np.ndarray:
        likes = (history[:, :own.shape[1]] * own).sum(axis=1)
        count = (history[:, own.shape[1]:] * own).sum(axis=1)
        return np.round((likes + PRIOR_RATINGS * prior) / (count + PRIOR_RATINGS), 4)

    train_rate = pd.Series(rate(before, genres), index=by_user.index).loc[train.index]
    eval_history = totals.reindex(eval_["user"].to_numpy(), fill_value=0.0).to_numpy()
    eval_rate = rate(eval_history, flags.loc[eval_["item"]].to_numpy(np.float64))
    return train_rate.to_numpy(), eval_rate


def _split_columns(log: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame,
                   like_rate: np.ndarray, fill: float) -> dict[str, np.ndarray]:
    by_user = _by_user(log)
    nearby = pd.Series(_nearby_mean(by_user["user"].to_numpy(), by_user["rating"].to_numpy(float),
                                    fill), index=by_user.index)
    joined = log.join(users, on="user").join(items, on="item")
    return {
        USER_ID: log["user"].astype(str).to_numpy(object),
        AGE: joined["age"].to_numpy(np.float64),
        GENDER: joined["gender"].to_numpy(object),
        OCCUPATION: joined["occupation"].to_numpy(object),
        ITEM_ID: log["item"].astype(str).to_numpy(object),
        GENRES: joined["genres"].to_numpy(object),
        YEAR: joined["year"].to_numpy(np.float64),
        GENRE_LIKE_RATE: like_rate,
        NEARBY_RATING: np.round(nearby.loc[log.index].to_numpy(), 4),
        LABEL: (log["rating"].to_numpy() >= POSITIVE_RATING).astype(np.int32),
    }


def _split_by_user(log: pd.DataFrame, eval_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``eval_fraction`` of each user's ratings (by time, then item) -> eval."""
    by_user = _by_user(log)
    rank = by_user.groupby("user").cumcount().to_numpy()
    size = by_user.groupby("user")["user"].transform("size").to_numpy()
    n_eval = np.minimum(np.floor(size * eval_fraction + 0.5), size - 1)  # keep 1 train row
    in_eval = pd.Series(rank >= size - n_eval, index=by_user.index)
    in_eval = in_eval.loc[log.index].to_numpy()
    return log[~in_eval], log[in_eval]


def prepare_movielens(src_dir: str, out_dir: str, *, eval_fraction: float = 0.2) -> SampleData:
    """Turns the GroupLens ML-100K files into train/eval CSVs and teacher/student configs.

    * Label: ``clk`` = 1 when the rating is >= 4 (about 55% of rows).
    * Split by time within each user: the last ``eval_fraction`` of every user's ratings (by
      timestamp, ties by item; at least one stays in train) form eval.csv, so the student is
      judged on the next ratings of the users it was trained on, as a model retrained daily
      serves mostly returning users. Both files are in time order (ties by user, then item).
      (A single global time cut was the first design: 85% of its eval rows came from users
      with no train rating, so any model scored mostly the cold start, user ids unused.)
    * User features: user_id, age, gender, occupation (u.user). Item features: item_id, genres
      (the 19 u.item flags as a '|' tag list; ``unknown`` if none is set), year (of the release
      date; ``UNKNOWN_YEAR`` for the one movie without a date).
    * Ranking feature ``genre_like_rate``: the user's like-rate (rating >= 4) over their train
      ratings of movies sharing this movie's genres, pooled over the genres and smoothed with
      ``PRIOR_RATINGS`` ratings at the train like-rate. A train row counts only the user's
      earlier train ratings, an eval row all of them, so no row sees its own label. A
      fine-ranking model has such user x item statistics; a two-tower student cannot take them
      (each tower sees one side), which makes it the teacher's transferable advantage.
    * Privileged feature ``nearby_rating``: the mean rating the user gave the up to 5 movies rated
      just before and the up to 5 rated just after this one (same user, same split; this row
      excluded; the train mean rating for a user's only row). It is privileged because it needs
      ratings that do not exist when a recommendation is served: the later ones, and the user's
      reactions in the same sitting. It is also informative beyond the user id (the user's mood
      and the kind of movies rated in that sitting drift over time), so a teacher that sees it
      knows more than any student can. Features such as the hour or the user's rating count so far
      were not chosen: they are known at serving time, so the student should simply have them.
      Computing it within each split keeps eval labels out of train rows.

    Args:
        src_dir: folder with u.data, u.user and u.item from ml-100k.zip.
        out_dir: local folder for the outputs, created if missing.
        eval_fraction: the share of each user's ratings, latest first, that go to eval.csv.

    Returns:
        The written paths.

    Raises:
        FileNotFoundError: if one of the three files is missing.
        ValueError: if eval_fraction is not in (0, 1) or a file is malformed.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}. Use e.g. 0.2.")
    for name in _FILES:
        path = os.path.join(src_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path}: missing. Download ML-100K from {DOWNLOAD_URL} and unzip it so that "
                f"{src_dir} holds {', '.join(_FILES)}.")
    data_path, user_path, item_path = (os.path.join(src_dir, n) for n in _FILES)

    raw = _read(data_path, ["user", "item", "rating", "ts"], "\t")
    log = pd.DataFrame({c: _ints(raw, c, data_path) for c in raw.columns})
    log = log.sort_values(["ts", "user", "item"], kind="stable").reset_index(drop=True)

    raw_users = _read(user_path, ["user", "age", "gender", "occupation", "zip"], "|")
    users = pd.DataFrame({"age": _ints(raw_users, "age", user_path).astype(np.float64),
                          "gender": raw_users["gender"].to_numpy(object),
                          "occupation": raw_users["occupation"].to_numpy(object)},
                         index=_ints(raw_users, "user", user_path))

    raw_items = _read(item_path, ["item", "title", "release", "video", "url", *GENRE_NAMES], "|",
                      encoding="latin-1")
    flags = raw_items[list(GENRE_NAMES)].to_numpy() == "1"
    flags[~flags.any(axis=1), 0] = True  # no genre set: "unknown", as in the genres column
    genres = [TAG_SEPARATOR.join(np.array(GENRE_NAMES)[row]) for row in flags]
    year = pd.to_numeric(raw_items["release"].str[-4:], errors="coerce").fillna(UNKNOWN_YEAR)
    item_ids = _ints(raw_items, "item", item_path)
    items = pd.DataFrame({"genres": np.array(genres, dtype=object),
                          "year": year.to_numpy(np.float64)}, index=item_ids)
    genre_flags = pd.DataFrame(flags, index=item_ids, columns=list(GENRE_NAMES))

    for ids, table, path in ((log["user"], users, user_path), (log["item"], items, item_path)):
        unknown = ~ids.isin(table.index)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise ValueError(f"{data_path}: id {ids.iloc[row]} is not in {path}. Use u.data, "
                             f"u.user and u.item from the same ml-100k.zip.")

    train, eval_ = _split_by_user(log, eval_fraction)
    fill = float(train["rating"].mean())
    train_rate, eval_rate = _genre_like_rate(train, eval_, genre_flags)
    logger.info("Read %d ratings, %d users and %d movies from %s; %d train, %d eval rows",
                len(log), len(users), len(items), src_dir, len(train), len(eval_))
    return write_dataset(out_dir, MOVIELENS_FEATURES,
                         _split_columns(train, users, items, train_rate, fill),
                         _split_columns(eval_, users, items, eval_rate, fill), batch_size=512)
