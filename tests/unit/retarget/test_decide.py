"""Decisions: vectorised Message-IDs equal the renderer's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from cartpulse.retarget.decide import Retargeter
from cartpulse.retarget.render import message_id
from cartpulse.settings import load_settings


def test_vectorised_message_ids_equal_the_renderers(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    starts = [
        dt.datetime(2019, 10, 1, 0, 0, 14, tzinfo=dt.UTC),
        dt.datetime(2019, 10, 1, 0, 0, 14, 250_000, tzinfo=dt.UTC),
        dt.datetime(2019, 10, 1, 0, 0, 14, 7, tzinfo=dt.UTC),
    ]
    carts = pa.table(
        {
            "user_session": ["a", "b-é", "c"],
            "session_start": pa.array(starts, pa.timestamp("us", tz="UTC")),
        }
    )
    got = Retargeter(settings, con)._message_ids(carts).to_pylist()
    want = [message_id(c, settings.smtp.sender) for c in carts.to_pylist()]
    assert got == want
