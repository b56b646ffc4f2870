"""`user_steps` equals the window query it replaces, on batches with ties and nulls."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse import duck
from cartpulse.operators.bots_steps import STEPS_SCHEMA, user_steps

_WINDOW_SQL = """
SELECT user_id, epoch_us(event_time) AS t_us, event_type, product_id, user_session,
       lag(epoch_us(event_time)) OVER w AS prev_us, lag(product_id) OVER w AS prev_product,
       lag(event_type) OVER w AS prev_type, lag(user_session) OVER w AS prev_session,
       lead(user_id) OVER w IS NULL AS is_last
FROM ev WHERE user_id IS NOT NULL
WINDOW w AS (PARTITION BY user_id ORDER BY event_time, _offset)
ORDER BY user_id, t_us, _offset
"""


def _events(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 6, rows).astype(object)
    users[rng.random(rows) < 0.1] = None
    sessions = rng.choice(["a", "b", "c"], rows).astype(object)
    sessions[rng.random(rows) < 0.2] = None
    return pa.table(
        {
            # few distinct times: many ties, broken by the offset
            "event_time": pa.array(rng.integers(0, 4, rows) * 1_000_000).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "event_type": pa.array(rng.choice(["view", "cart", "purchase"], rows)),
            "product_id": pa.array(rng.integers(1, 4, rows)),
            "user_id": pa.array(users, pa.int64()),
            "user_session": pa.array(sessions, pa.string()),
            "_offset": pa.array(rng.permutation(rows) + 1_000, pa.int64()),
        }
    )


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 60), seed=st.integers(0, 2**32 - 1))
def test_user_steps_equal_the_window_query(rows: int, seed: int) -> None:
    events = _events(rows, seed)
    con = duck.connect()
    con.register("ev", events)
    expected = con.sql(_WINDOW_SQL).to_arrow_table().cast(STEPS_SCHEMA)
    assert user_steps(events).to_pylist() == expected.to_pylist()


def test_a_batch_without_users_gives_no_steps() -> None:
    events = _events(10, 1).drop_columns(["user_id"])
    events = events.append_column("user_id", pa.nulls(10, pa.int64()))
    assert user_steps(events).num_rows == 0
