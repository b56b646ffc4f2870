"""The numpy bot operator equals the SQL reference, batch by batch: alerts and state.

Random streams with ties, late events, users and sessions missing, across batches that carry
state; rules set low so that every one of them fires on small data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.bench.replay import ensure_parquet
from cartpulse.operators.bots import BotOperator, BotState
from cartpulse.operators.order import encode_shared
from cartpulse.settings import BotSettings
from tests.bots_reference import ReferenceBotOperator

LOW = BotSettings(
    max_events_per_minute=6,
    max_sessions_per_hour=3,
    min_gaps=5,
    max_gap_cv=0.5,
    max_gap_s=600,
    min_carts=3,
    fast_cart_s=5,
    max_other_per_cart=0.5,
    min_repeats=3,
    max_repeat_share=0.2,
    min_hour_events=8,
    max_traffic_share=0.05,
    min_robust_z=1.0,
    cooldown_s=600,
    state_ttl_s=900,
)


def _events(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 8, rows).astype(object)
    users[rng.random(rows) < 0.05] = None
    sessions = rng.choice(["a", "b", "c", "d"], rows).astype(object)
    sessions[rng.random(rows) < 0.2] = None
    # seconds over about an hour and a half, often equal (ties broken by the offset), a few late
    seconds = (
        np.sort(rng.integers(0, 5_400, rows))
        - rng.integers(0, 3, rows) * (rng.random(rows) < 0.1) * 900
    )
    return pa.table(
        {
            "event_time": pa.array(1_569_888_000_000_000 + seconds * 1_000_000).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "event_type": pa.array(
                rng.choice(
                    ["view", "cart", "remove_from_cart", "purchase"], rows, p=[0.5, 0.3, 0.1, 0.1]
                )
            ),
            "product_id": pa.array(rng.integers(1, 4, rows)),
            "user_id": pa.array(users, pa.int64()),
            "user_session": pa.array(sessions, pa.string()),
            "_offset": pa.array(np.arange(rows) + 1_000, pa.int64()),
        }
    )


def _alerts(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    for row in rows:
        row["evidence"] = json.loads(row["evidence"])
    return rows


def _same_state(got: BotState, want: BotState) -> None:
    users = want.users.sort_by("user_id")
    assert got.users.column_names == users.column_names
    for name in users.column_names:
        a, b = got.users.column(name), users.column(name)
        if pa.types.is_floating(a.type):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, err_msg=name)
        else:
            assert a.to_pylist() == b.to_pylist(), name
    assert got.hour_totals.to_pylist() == want.hour_totals.sort_by("hour_us").to_pylist()


def _compare(events: pa.Table, batch_rows: int, rules: BotSettings, encoded: bool = False) -> int:
    """Feed both operators the same batches; returns how many alerts they raised."""
    ours, reference = BotOperator(rules), ReferenceBotOperator(rules)
    mine, theirs = BotState.empty(), BotState.empty()
    raised = 0
    for start in range(0, max(events.num_rows, 1), batch_rows):
        batch = events.slice(start, batch_rows)
        times = batch.column("event_time").cast(pa.int64()).to_numpy()
        now = int(times.max()) if len(times) else None
        shared = encode_shared(batch, ("user_session", "event_type")) if encoded else batch
        mine, got = ours.advance(mine, shared, now)
        theirs, want = reference.advance(theirs, batch, now)
        assert _alerts(got) == _alerts(want)
        _same_state(mine, theirs)
        raised += got.num_rows
    return raised


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(5, 150),
    encoded=st.booleans(),
)
def test_random_streams_match_the_reference(
    rows: int, seed: int, batch: int, encoded: bool
) -> None:
    """Plain string columns, or the engine's dictionary-encoded ones."""
    _compare(_events(rows, seed), batch, LOW, encoded)


def test_the_low_rules_do_fire() -> None:
    assert _compare(_events(2_000, 7), 300, LOW) > 0


@pytest.mark.parametrize("batch_rows", [30_000, 77_777])
def test_generated_traffic_with_bots_matches_the_reference(tmp_path: Path, batch_rows: int) -> None:
    table = pq.read_table(ensure_parquet(tmp_path, 200_000, seed=11))
    table = table.append_column("_offset", pa.array(np.arange(table.num_rows), pa.int64()))
    assert _compare(table, batch_rows, BotSettings(), encoded=batch_rows == 30_000) > 0
