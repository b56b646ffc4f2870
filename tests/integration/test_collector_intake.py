"""The collector's write path on a real home: dedupe across restarts, backpressure."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from cartpulse.serve.pipeline import Pipeline
from cartpulse.settings import Settings, load_settings
from cartpulse.web.app import create_app

KEY = "k-123"


def _settings(tmp_path: Path, **collector: object) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        collector={"write_keys": (KEY,), **collector},
        retarget={"secret_key": "Zx8Lq2Vn5Rt7Wy1Ks4Hd6Fg9Jb3Mc0Pa"},
    )


def _body(sessions: range, minute: int = 0) -> bytes:
    rows = [
        {
            "event_time": f"2019-10-01 10:{minute:02d}:00 UTC",
            "event_type": "view",
            "product_id": 7,
            "price": 1.5,
            "user_id": 1,
            "user_session": f"s{i}",
        }
        for i in sessions
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_duplicates_are_caught_across_a_restart_even_without_a_checkpoint(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = Pipeline(settings)
    assert first.intake.accept(_body(range(100)), "t").accepted == 100
    first.intake.save_checkpoint()
    assert first.intake.accept(_body(range(100, 150)), "t").accepted == 50
    # Crash: the last 50 are in the log but not in the saved checkpoint.
    first.log.close()
    first.store.close()

    second = Pipeline(settings)
    try:
        again = second.intake.accept(_body(range(0, 200)), "t")
        assert (again.accepted, again.duplicates) == (50, 150)
    finally:
        second.shutdown()


def test_backpressure_when_the_engine_falls_behind(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_lag_events=1000)
    pipeline = Pipeline(settings)  # not started: nothing consumes the log
    try:
        client = TestClient(create_app(settings, pipeline=pipeline, admin_token="t"))
        auth = {"Authorization": f"Bearer {KEY}"}
        ok = client.post("/v1/events", content=_body(range(1500)), headers=auth)
        assert ok.status_code == 202
        assert pipeline.lag() == 1500
        shed = client.post("/v1/events", content=_body(range(2000, 2010)), headers=auth)
        assert shed.status_code == 429
        assert shed.headers["retry-after"] == "1"
        assert "behind" in shed.json()["detail"]
        ready = client.get("/readyz", headers={"Authorization": "Bearer t"})
        assert ready.status_code == 503
    finally:
        pipeline.shutdown()
    assert pipeline.engine.offset == 1500  # the shutdown drained what was acknowledged


def test_per_row_errors_are_capped_but_every_row_is_counted(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_errors=2)
    pipeline = Pipeline(settings)
    try:
        bad = "\n".join(["{not json"] * 5).encode()
        result = pipeline.intake.accept(_body(range(3)) + b"\n" + bad, "t")
        assert (result.accepted, result.quarantined) == (3, 5)
        assert [e["row"] for e in result.errors] == [4, 5]
        assert result.errors_truncated
        pipeline.intake.flush_dq()
        counted = (
            pipeline.connection()
            .execute("SELECT sum(rows) FROM dq_counts WHERE reason = 'malformed'")
            .fetchone()
        )
        assert counted == (5,)
    finally:
        pipeline.shutdown()
