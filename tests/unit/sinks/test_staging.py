"""Commit records: roll forward after a crash, discard abandoned staging."""

from __future__ import annotations

import json
from pathlib import Path

from cartpulse.sinks.staging import Commits, write_atomic


def test_commit_moves_files_and_forgets_the_record(tmp_path: Path) -> None:
    commits = Commits(tmp_path / "state")
    staging = commits.staging_dir("c1")
    (staging / "a.parquet").write_bytes(b"a")
    dst = tmp_path / "lake" / "x" / "a.parquet"
    commits.commit("c1", [(staging / "a.parquet", dst)], {"k": 1})
    assert dst.read_bytes() == b"a"
    assert not list((tmp_path / "state" / "commits").glob("*.json"))
    assert not (tmp_path / "state" / "staging" / "c1").exists()


def test_recover_rolls_forward_a_half_applied_commit(tmp_path: Path) -> None:
    commits = Commits(tmp_path / "state")
    staging = commits.staging_dir("c2")
    done_dst, todo_dst = tmp_path / "lake" / "done.parquet", tmp_path / "lake" / "todo.parquet"
    (staging / "todo.parquet").write_bytes(b"todo")
    done_dst.parent.mkdir(parents=True)
    done_dst.write_bytes(b"done")  # this move happened before the crash
    record = {
        "moves": [
            [str(staging / "done.parquet"), str(done_dst)],
            [str(staging / "todo.parquet"), str(todo_dst)],
        ],
        "meta": {"path": "f.csv"},
    }
    write_atomic(tmp_path / "state" / "commits" / "c2.json", json.dumps(record).encode())
    finished = Commits(tmp_path / "state").recover()
    assert finished == [{"path": "f.csv"}]
    assert todo_dst.read_bytes() == b"todo" and done_dst.read_bytes() == b"done"
    assert not list((tmp_path / "state" / "commits").glob("*.json"))


def test_recover_discards_staging_without_a_record(tmp_path: Path) -> None:
    commits = Commits(tmp_path / "state")
    staging = commits.staging_dir("c3")
    (staging / "partial.parquet").write_bytes(b"half")
    assert commits.recover() == []
    assert not staging.exists()


def test_write_atomic_replaces_whole_content(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
