"""etcbench.io: atomic writes and the one all-or-nothing output mechanism every stage runs in."""

from __future__ import annotations

import os

import numpy as np
import pytest

from etcbench.io import all_or_nothing, atomic_write, json_object, load_npz, save_npz, write_json


def test_a_failing_block_removes_every_output_it_wrote_and_keeps_caches_and_older_files(tmp_path):
    (tmp_path / "older.json").write_text("{}")
    with pytest.raises(RuntimeError), all_or_nothing() as written:
        write_json(tmp_path / "a.json", {"a": 1})
        save_npz(tmp_path / "sub" / "b.npz", x=np.zeros(3))
        with atomic_write(tmp_path / "state.pt", output=False) as fh:  # resumable state
            fh.write(b"state")
        assert written == [tmp_path / "a.json", tmp_path / "sub" / "b.npz"]
        raise RuntimeError("the stage fails")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["older.json", "state.pt"]


def test_nested_blocks_hand_their_files_to_the_outer_one(tmp_path):
    with pytest.raises(ValueError), all_or_nothing() as outer:
        with all_or_nothing() as inner:
            write_json(tmp_path / "inner.json", {})
        assert inner == [tmp_path / "inner.json"] and outer == inner
        write_json(tmp_path / "outer.json", {})
        raise ValueError("later step fails")
    assert not any(tmp_path.iterdir())


def test_success_keeps_everything_and_outside_a_block_nothing_is_tracked(tmp_path):
    with all_or_nothing() as written:
        write_json(tmp_path / "a.json", {"a": 1})
    write_json(tmp_path / "b.json", {"b": 2})
    assert written == [tmp_path / "a.json"] and (tmp_path / "b.json").is_file()


def test_atomic_write_leaves_no_temporary_file_and_sets_the_mode_first(tmp_path):
    with pytest.raises(OSError), atomic_write(tmp_path / "x.bin") as fh:
        fh.write(b"half")
        raise OSError("disk full")
    assert not any(tmp_path.iterdir())
    save_npz(tmp_path / "k.npz", mode=0o600, a=np.arange(3))
    assert os.stat(tmp_path / "k.npz").st_mode & 0o777 == 0o600
    assert load_npz(tmp_path / "k.npz")["a"].tolist() == [0, 1, 2]


def test_a_write_removes_what_a_killed_earlier_write_of_the_same_file_left(tmp_path):
    (tmp_path / ".model.pt.abc123.tmp").write_bytes(b"half a model")  # a write killed by SIGKILL
    (tmp_path / ".model.pt.xyz.tmp").write_bytes(b"")
    (tmp_path / ".other.pt.abc.tmp").write_bytes(b"another file's")  # not ours: kept
    (tmp_path / "[x].json").write_text("{}")
    (tmp_path / ".[x].json.q.tmp").write_text("{")  # glob characters in the name are literal
    with atomic_write(tmp_path / "model.pt") as fh:
        fh.write(b"model")
    with atomic_write(tmp_path / "[x].json", binary=False) as fh:
        fh.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc.tmp", "[x].json", "model.pt"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_outputs_follow_the_umask_and_an_explicit_mode_wins(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "record.json", {"a": 1})
        save_npz(tmp_path / "images.npz", a=np.arange(3))
        save_npz(tmp_path / "k.npz", mode=0o600, a=np.arange(3))
        reference = tmp_path / "opened.txt"  # what a plain open() creates under this umask
        reference.write_text("x")
    finally:
        os.umask(old)
    expected = reference.stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    assert os.stat(tmp_path / "record.json").st_mode & 0o777 == expected
    assert os.stat(tmp_path / "images.npz").st_mode & 0o777 == expected
    assert os.stat(tmp_path / "k.npz").st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("text", "message"), [("{", "not valid JSON"), ("[1]", "expected a JSON object, got list")])
def test_json_object_names_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        json_object(text)
