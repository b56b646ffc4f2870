"""The CLI as a user runs it: ingest, query, errors, --json, --help."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_ingest_then_query_real_rows(real_dir: Path, home: Path) -> None:
    files = [str(p) for p in sorted(real_dir.glob("*.csv"))]
    res = run_cli("ingest", *files, "--json", home=home)
    assert res.code == 0, res.stderr
    report = res.json()
    assert set(report) >= {"read", "clean", "quarantined", "duplicates", "by_reason"}
    assert report["read"] == report["clean"] + report["quarantined"] + report["duplicates"]

    q = run_cli("query", "SELECT count(*) AS n FROM events", "--json", home=home)
    assert q.code == 0, q.stderr
    assert q.json() == [{"n": report["clean"]}]

    first = run_cli(
        "query",
        "SELECT event_time, price FROM events ORDER BY event_time, price LIMIT 1",
        "--json",
        home=home,
    ).json()
    assert first == [{"event_time": "2019-10-01T00:00:00+00:00", "price": 2.62}]
    table = run_cli("query", "SELECT min(event_time) AS t FROM events", home=home)
    assert table.code == 0 and "2019-10-01 00:00:00+00:00" in table.stdout

    types = run_cli(
        "query", "SELECT DISTINCT event_type FROM events ORDER BY 1", "--json", home=home
    ).json()
    assert [r["event_type"] for r in types] == ["cart", "purchase", "remove_from_cart", "view"]


def test_query_table_output_and_limit(real_dir: Path, home: Path) -> None:
    run_cli("ingest", str(real_dir / "cosmetics_9col_rows.csv"), home=home)
    res = run_cli(
        "query", "SELECT brand FROM events ORDER BY brand NULLS LAST", "--limit", "3", home=home
    )
    assert res.code == 0
    assert [ln.strip("│ ") for ln in res.stdout.splitlines()[3:6]] == [
        "bpw.style",
        "cnd",
        "dartnails",
    ]
    assert "17 more rows not shown" in res.stderr


def test_query_refuses_writes_and_reports_bad_sql(home: Path) -> None:
    for sql in (
        "DROP VIEW events",
        "COPY (SELECT 1) TO 'x.csv'",
        "SELECT 1; SELECT 2",
        "ATTACH 'x.db'",
    ):
        res = run_cli("query", sql, home=home)
        assert res.code == 2, sql
        assert res.stderr.count("\n") == 1 and "error:" in res.stderr
        assert "Traceback" not in res.stderr
    res = run_cli("query", "SELECT no_such_column FROM events", home=home)
    assert res.code == 2 and "no_such_column" in res.stderr


def test_query_on_empty_home_has_typed_empty_views(home: Path) -> None:
    res = run_cli("query", "SELECT count(*) AS n, max(price) AS p FROM events", "--json", home=home)
    assert res.code == 0, res.stderr
    assert res.json() == [{"n": 0, "p": None}]


def test_clear_errors_for_bad_input(home: Path, tmp_path: Path) -> None:
    missing = run_cli("ingest", str(tmp_path / "nope.csv"), home=home)
    assert missing.code == 2 and "no such file" in missing.stderr
    odd = tmp_path / "events.xlsx"
    odd.write_text("x")
    res = run_cli("ingest", str(odd), home=home)
    assert res.code == 2 and "unknown file type" in res.stderr
    no_cols = tmp_path / "bad.csv"
    no_cols.write_text("a,b\n1,2\n")
    res = run_cli("ingest", str(no_cols), home=home)
    assert res.code == 2 and "missing required column" in res.stderr
    assert not (home / "lake").exists() or not any((home / "lake").rglob("*.parquet"))


def test_bad_setting_fails_at_start(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cartpulse.toml"
    cfg.write_text("[ingest]\ncompression = 'zip'\n")
    res = run_cli("--config", str(cfg), "query", "SELECT 1", home=home)
    assert res.code == 2
    assert "ingest.compression" in res.stderr and "zstd" in res.stderr


def test_help_teaches_with_examples() -> None:
    for verb in ("ingest", "query", "generate"):
        res = run_cli(verb, "--help")
        assert res.code == 0
        assert "cartpulse " + verb in res.stdout.replace("\n", " ")
