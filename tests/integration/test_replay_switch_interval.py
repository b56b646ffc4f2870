"""A full-speed replay hands Python's GIL over less often; paced replays and callers keep theirs."""

from __future__ import annotations

import sys
from pathlib import Path

from cartpulse.engine.replay import REPLAY_SWITCH_INTERVAL_S, replay_files
from cartpulse.settings import Settings

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def write_events(path: Path, user_id: int) -> Path:
    """Three events of one user's session, as a CSV file."""
    rows = [
        f"2019-10-01 00:00:0{i} UTC,view,{100 + i},,,,1.5,{user_id},s{user_id}" for i in range(3)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_only_a_full_speed_replay_changes_the_switch_interval(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    assert before != REPLAY_SWITCH_INTERVAL_S
    settings = Settings(home=tmp_path / "home", fsync="never")
    seen: list[float] = []

    def on_rows(_: int) -> None:  # called by the feeder thread during the replay
        seen.append(sys.getswitchinterval())

    report = replay_files(settings, [write_events(tmp_path / "a.csv", 1)], on_rows=on_rows)
    assert report.as_dict()["read"] == 3
    assert seen and set(seen) == {REPLAY_SWITCH_INTERVAL_S}
    assert sys.getswitchinterval() == before

    seen.clear()
    replay_files(settings, [write_events(tmp_path / "b.csv", 2)], speed=1e6, on_rows=on_rows)
    assert seen and set(seen) == {before}
    assert sys.getswitchinterval() == before
