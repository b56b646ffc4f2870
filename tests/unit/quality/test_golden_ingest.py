"""Golden cases: small input files through ingest_files, compared exactly with expected outputs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from ._support import ingest, read_lake

CASES = Path(__file__).resolve().parents[2] / "cases" / "ingest"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_ingest_case(tmp_path: Path, case: str) -> None:
    expected = json.loads((CASES / case / "expected.json").read_text(encoding="utf-8"))
    source = tmp_path / "input.csv"
    shutil.copy(CASES / case / "input.csv", source)
    home = tmp_path / "home"

    report = ingest(home, source)
    assert {k: report[k] for k in expected["report"]} == expected["report"]

    partitions = sorted(p.name for p in (home / "lake" / "events").iterdir())
    assert partitions == expected["partitions"]

    events = sorted(read_lake(home).to_pylist(), key=lambda e: (e["event_time"], e["product_id"]))
    for event in expected["events"]:
        event["event_time"] = dt.datetime.fromisoformat(event["event_time"])
    assert events == expected["events"]

    quarantine = sorted(read_lake(home, "quarantine").to_pylist(), key=lambda q: q["line"])
    assert {q["source"] for q in quarantine} == {str(source)}
    assert len({q["ingested_at"] for q in quarantine}) == 1
    got = [{k: q[k] for k in ("line", "reason", "detail", "raw")} for q in quarantine]
    assert got == expected["quarantine"]
