"""`cartpulse replay --to URL`: files sent as live HTTP traffic end up as a local replay would."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.serve_process import WRITE_KEY, Serve

_LAKE = (
    "SELECT event_time, event_type, product_id, category_id, category_code, brand, price, "
    "user_id, user_session FROM events ORDER BY ALL"
)
_QUARANTINE = "SELECT reason, count(*) AS n FROM quarantine GROUP BY 1 ORDER BY 1"


def test_replay_to_serve_matches_a_local_replay(tmp_path: Path, real_dir: Path) -> None:
    files = sorted(str(p) for p in real_dir.glob("*.csv"))
    local = tmp_path / "local"
    assert run_cli("replay", *files, home=local).code == 0

    remote = tmp_path / "remote"
    with Serve(remote) as server:
        sent = run_cli(
            "replay",
            *files,
            "--to",
            server.url,
            "--write-key",
            WRITE_KEY,
            "--batch-events",
            "700",
            "--concurrency",
            "1",
            "--json",
        )
        assert sent.code == 0, sent.stderr
    report = sent.json()
    rows = sum(len(Path(f).read_text().splitlines()) - 1 for f in files)  # minus headers
    assert report["rows"] == rows
    assert report["accepted"] + report["quarantined"] + report["duplicates"] == rows
    assert report["ack_p99_ms"] is not None

    def lake(home: Path, sql: str) -> list[dict[str, object]]:
        result = run_cli("query", sql, "--json", home=home)
        assert result.code == 0, result.stderr
        rows: list[dict[str, object]] = result.json()
        return rows

    expected = lake(local, _LAKE)
    assert len(expected) > 10_000
    assert lake(remote, _LAKE) == expected
    assert lake(remote, _QUARANTINE) == lake(local, _QUARANTINE)


def test_replay_to_explains_a_wrong_key(tmp_path: Path, real_dir: Path) -> None:
    with Serve(tmp_path / "home") as server:
        result = run_cli(
            "replay",
            str(real_dir / "cosmetics_9col_rows.csv"),
            "--to",
            server.url,
            "--write-key",
            "wrong",
        )
    assert result.code == 2
    assert "401" in result.stderr and "unknown write key" in result.stderr
