"""The customer directory: CSV import with rejects, upserts, unsubscribes and eligibility."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from cartpulse.generate.customers import build_customers
from cartpulse.generate.population import CARTED, SEEN
from cartpulse.generate.writer import write_table_csv
from cartpulse.retarget import customers
from cartpulse.retarget.customers import (
    CustomerFileError,
    eligibility,
    ensure_schema,
    import_customers,
    unsubscribe,
)

T1 = dt.datetime(2019, 10, 1, 9, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(days=1)
T3 = T1 + dt.timedelta(days=2)

HEADER = "user_id,email,first_name,locale,consent"
VALID = [
    "101,anna.ivanova7@example.com,Анна,ru_RU,true",
    "102,Jessica_Smith14@EXAMPLE.org,Jessica,en_US,1",
    "103,kaethe21@example.net,Käthe,de_DE,no",
    "104,lea.moreau28@example.com,,,YES",  # no name, default locale
    "105,theo35@example.com,Théo,fr-fr,n",  # BCP 47 spelling
]
INVALID = [
    ("106,broken42example.com,Broken,en_US,true", "invalid_email"),
    ("107,nodomain49@,Nobody,en_US,true", "invalid_email"),
    ("108,,Empty,en_US,true", "invalid_email"),
    (",missing@example.com,Missing,en_US,true", "missing_user_id"),
    ("12x,bad@example.com,Bad,en_US,true", "bad_user_id"),
    ("-5,neg@example.com,Neg,en_US,true", "bad_user_id"),
    ("109,maybe@example.com,Maybe,en_US,maybe", "bad_consent"),
    ("110,empty-consent@example.com,Nil,en_US,", "bad_consent"),
    ("111,xx@example.com,Xx,xx_YY,true", "bad_locale"),
    ("112,too,many,columns,true,extra", "malformed"),
    ("113,short@example.com", "malformed"),
]


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    """A customers CSV with the given data lines."""
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """Query results as dicts."""
    table: pa.Table = con.sql(sql).to_arrow_table()
    return list(table.to_pylist())


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A real DuckDB file with the directory tables."""
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_schema(connection)
    return connection


def test_import_counts_reasons_and_keeps_raw_lines(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    lines = VALID + [line for line, _ in INVALID]
    path = write_csv(tmp_path / "customers.csv", lines)
    report = import_customers(con, path, T1)
    assert report.read == len(lines) == report.upserted + report.rejected
    assert report.upserted == len(VALID)
    expected: dict[str, int] = {}
    for _, reason in INVALID:
        expected[reason] = expected.get(reason, 0) + 1
    assert report.by_reason == expected
    assert report.as_dict()["by_reason"] == expected
    assert report.as_dict()["source"] == str(path)
    rejects = rows(con, "SELECT * FROM customer_rejects ORDER BY line")
    assert [(r["raw"], r["reason"]) for r in rejects] == INVALID
    assert [r["line"] for r in rejects] == list(range(len(VALID) + 2, len(lines) + 2))
    assert {r["source"] for r in rejects} == {str(path)}
    assert all(r["imported_at"] == T1 and r["detail"] for r in rejects)
    assert "@" in next(r["detail"] for r in rejects if r["raw"].startswith("106"))


def test_import_normalises_values(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    import_customers(con, write_csv(tmp_path / "c.csv", VALID), T1)
    got = {r["user_id"]: r for r in rows(con, "SELECT * FROM customers")}
    assert got[102]["email"] == "Jessica_Smith14@example.org"  # domain lower-cased
    assert (got[101]["first_name"], got[101]["locale"], got[101]["consent"]) == (
        "Анна",
        "ru_RU",
        True,
    )
    assert (got[103]["first_name"], got[103]["consent"]) == ("Käthe", False)
    assert (got[104]["first_name"], got[104]["locale"], got[104]["consent"]) == (
        None,
        "en_US",
        True,
    )
    assert (got[105]["locale"], got[105]["consent"]) == ("fr_FR", False)
    assert all(r["updated_at"] == T1 and r["unsubscribed_at"] is None for r in got.values())


def test_header_case_order_and_extra_columns(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(
        b"\xef\xbb\xbfConsent,EMAIL,Signup_Source,User_ID\r\n"
        b"false,a@example.com,web,1\r\n"
        b"\r\n"
        b'TRUE,"b@example.com",app,2\r\n'
    )
    report = import_customers(con, path, T1)
    assert (report.read, report.upserted, report.rejected) == (2, 2, 0)
    got = rows(con, "SELECT user_id, email, first_name, locale, consent FROM customers ORDER BY 1")
    assert got == [
        {
            "user_id": 1,
            "email": "a@example.com",
            "first_name": None,
            "locale": "en_US",
            "consent": False,
        },
        {
            "user_id": 2,
            "email": "b@example.com",
            "first_name": None,
            "locale": "en_US",
            "consent": True,
        },
    ]


def test_invalid_utf8_rejects_only_that_line(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(
        HEADER.encode() + b"\n1,a@example.com,A,en_US,true\n2,b\xff@example.com,B,en_US,true\n"
    )
    report = import_customers(con, path, T1)
    assert (report.upserted, report.by_reason) == (1, {"malformed": 1})
    reject = rows(con, "SELECT raw, detail FROM customer_rejects")[0]
    assert reject["raw"] == "2,b\ufffd@example.com,B,en_US,true"
    assert reject["detail"] == "not valid UTF-8"


def test_upsert_updates_and_never_resubscribes(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    import_customers(con, write_csv(tmp_path / "a.csv", VALID), T1)
    unsubscribe(con, 101, T2)
    unsubscribe(con, 101, T3)  # a second click keeps the first time
    unsubscribe(con, 999, T2)  # not imported yet: remembered anyway
    second = [
        "101,anna.new@example.com,Anja,ru_RU,true",
        "999,late@example.com,Late,en_GB,true",
        "102,first@example.org,First,en_US,true",
        "102,second@example.org,Second,en_US,false",  # the last row of a user wins
    ]
    report = import_customers(con, write_csv(tmp_path / "b.csv", second), T3)
    assert (report.read, report.upserted, report.rejected) == (4, 4, 0)
    got = {r["user_id"]: r for r in rows(con, "SELECT * FROM customers")}
    assert len(got) == len(VALID) + 1
    assert (got[101]["email"], got[101]["first_name"]) == ("anna.new@example.com", "Anja")
    assert got[101]["unsubscribed_at"] == T2
    assert got[101]["updated_at"] == T3
    assert (got[999]["email"], got[999]["consent"], got[999]["unsubscribed_at"]) == (
        "late@example.com",
        True,
        T2,
    )
    assert (got[102]["email"], got[102]["consent"]) == ("second@example.org", False)
    assert got[103]["updated_at"] == T1  # untouched rows keep their time


def test_chunks_duplicates_across_chunks_and_atomicity(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(customers, "CHUNK_ROWS", 3)
    lines = [f"{i},u{i}@example.com,U{i},en_US,true" for i in range(1, 11)]
    lines += ["1,final@example.com,Final,en_US,false", "oops,x@example.com,X,en_US,true"]
    path = write_csv(tmp_path / "c.csv", lines)
    report = import_customers(con, path, T1)
    assert (report.read, report.upserted, report.rejected) == (12, 11, 1)
    assert rows(con, "SELECT email FROM customers WHERE user_id = 1") == [
        {"email": "final@example.com"}
    ]

    # A failure half-way leaves the directory as it was: one transaction per import.
    calls = {"n": 0}
    real_write = customers._write_chunk

    def failing_write(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_write(*args)

    monkeypatch.setattr(customers, "_write_chunk", failing_write)
    other = write_csv(
        tmp_path / "d.csv", [f"{i},n{i}@example.com,N,en_US,true" for i in range(50, 60)]
    )
    with pytest.raises(OSError, match="disk full"):
        import_customers(con, other, T2)
    assert rows(con, "SELECT count(*) AS n FROM customers") == [{"n": 10}]
    assert rows(con, "SELECT count(*) AS n FROM customer_rejects") == [{"n": 1}]


def test_file_level_errors(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(CustomerFileError, match="no column email"):
        import_customers(con, write_csv(tmp_path / "a.csv", ["1,true"], "user_id,consent"), T1)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CustomerFileError, match="empty"):
        import_customers(con, empty, T1)
    with pytest.raises(CustomerFileError, match="cannot read"):
        import_customers(con, tmp_path / "missing.csv", T1)
    with pytest.raises(ValueError, match="timezone-aware"):
        import_customers(con, write_csv(tmp_path / "b.csv", VALID), dt.datetime(2019, 10, 1))


def test_generator_file_imports_as_is(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    user_ids = np.arange(500_000_000, 500_020_000, dtype=np.int64)
    flags = np.where(np.arange(user_ids.shape[0]) % 3 == 0, SEEN, CARTED)
    table = build_customers(rng, user_ids, flags)
    path = tmp_path / "customers.csv"
    write_table_csv(path, table)
    report = import_customers(con, path, T1)
    assert report.read == table.num_rows
    # The generator breaks ~0.5 % of addresses on purpose; nothing else may be rejected.
    assert set(report.by_reason) == {"invalid_email"}
    assert 0.002 < report.rejected / report.read < 0.01
    got = rows(con, "SELECT count(*) AS n, count(DISTINCT locale) AS locales FROM customers")
    assert got == [{"n": report.upserted, "locales": 5}]
    consenting = rows(con, "SELECT avg(consent::INT) AS share FROM customers")[0]["share"]
    assert 0.7 < consenting < 0.8


def test_eligibility_is_a_batch_join(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    import_customers(con, write_csv(tmp_path / "a.csv", VALID), T1)
    unsubscribe(con, 103, T2)
    table = eligibility(con, [105, 103, 101, 4242, 101])
    assert table.column_names == [
        "user_id",
        "email",
        "first_name",
        "locale",
        "consent",
        "unsubscribed_at",
    ]
    assert table.schema.field("unsubscribed_at").type == pa.timestamp("us", tz="UTC")
    got = table.to_pylist()
    assert [r["user_id"] for r in got] == [101, 103, 105]  # unknown users are absent
    assert got[1]["unsubscribed_at"] == T2
    assert [r["consent"] for r in got] == [True, False, False]
    assert eligibility(con, pa.array([], pa.int64())).num_rows == 0
    chunked = pa.chunked_array([pa.array([101], pa.int32()), pa.array([105], pa.int32())])
    assert eligibility(con, chunked).column("user_id").to_pylist() == [101, 105]
    assert eligibility(con, pa.array([102], pa.int64())).column("email").to_pylist() == [
        "Jessica_Smith14@example.org"
    ]


@pytest.mark.slow
def test_large_import_lands_every_row(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """100k rows (speed is measured by benchmarks, not asserted here)."""
    lines = [f"{i},user.{i}@example.com,U,en_US,true" for i in range(1, 100_001)]
    path = write_csv(tmp_path / "big.csv", lines)
    report = import_customers(con, path, T1)
    assert (report.read, report.upserted) == (100_000, 100_000)
    assert con.execute("SELECT count(*) FROM customers").fetchall() == [(100_000,)]


def test_directory_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as first:
        import_customers(first, write_csv(tmp_path / "a.csv", VALID), T1)
        unsubscribe(first, 101, T2)
    with duckdb.connect(str(db)) as second:
        ensure_schema(second)  # idempotent
        got = eligibility(second, [101]).to_pylist()
    assert got[0]["unsubscribed_at"] == T2
