"""Small JSON files: atomic local writes, remote writes, defaults and clear errors."""

import os

import pytest

from recdistill.data import json_files


def test_round_trip_is_sorted_indented_and_leaves_no_staging_file(tmp_path):
    uri = str(tmp_path / "metrics.json")
    json_files.write_json(uri, {"b": 1, "a": [1.5, "x"]})
    assert (tmp_path / "metrics.json").read_text() == (
        '{\n  "a": [\n    1.5,\n    "x"\n  ],\n  "b": 1\n}')
    json_files.write_json(uri, {"a": 2})  # replaces the file whole
    assert json_files.read_json(uri) == {"a": 2}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_missing_file_default_and_error(tmp_path):
    uri = str(tmp_path / "CHAMPION")
    assert json_files.read_json(uri, default=None) is None
    with pytest.raises(FileNotFoundError, match="CHAMPION"):
        json_files.read_json(uri)


def test_bad_json_names_file_and_position(tmp_path):
    (tmp_path / "stats.json").write_text('{\n  "rows": 3,\n}')
    with pytest.raises(ValueError, match=r"stats\.json: not valid JSON at line 3, column 1"):
        json_files.read_json(str(tmp_path / "stats.json"))


def test_a_write_failing_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    uri = str(tmp_path / "stats.json")
    json_files.write_json(uri, {"ok": True})

    def no_rename(src, dst):
        assert open(src).read() == '{\n  "ok": false\n}'  # fully written beside the target
        raise OSError("disk gone")

    monkeypatch.setattr(json_files.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        json_files.write_json(uri, {"ok": False})
    monkeypatch.undo()
    assert json_files.read_json(uri) == {"ok": True}
    assert os.listdir(tmp_path) == ["stats.json"]


def test_gcs_round_trip_on_the_emulator(gcs_bucket):
    uri = f"{gcs_bucket}/run/metrics.json"
    json_files.write_json(uri, {"auc": 0.75})
    assert json_files.read_json(uri) == {"auc": 0.75}
    assert json_files.read_json(f"{gcs_bucket}/run/none.json", default={}) == {}
