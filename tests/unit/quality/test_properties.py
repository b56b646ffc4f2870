"""Property tests: whatever a file holds, ingest never crashes, never loses a row, and counts add up.

Each generated row carries a unique token (`tok<N>q`) in a field that is never garbled, so every
written row can be found again: in the lake (user_session), in quarantine (raw), or counted as a
duplicate of a row with the same token.

Known bugs are kept out of the generators on purpose, and each has its own strict xfail test:
rows of only empty fields (sources/test_csv_reader.py), a huge field after a quoted newline and a
bad row (same file), and timestamps that fall outside years 1900-2199 once converted to UTC
(quality/test_validate.py). Bare carriage returns are not generated: a lone "\r" inside a field
is a line break to the reader, so the row would not be the one written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cartpulse.schema import EVENT_COLUMNS, EVENT_TYPES, Reason

from ._support import csv_line, ingest, read_lake

TOKEN = re.compile(r"tok(\d+)q")
BAD_UTF8 = "\ue000"  # replaced by an invalid UTF-8 byte sequence after encoding
HUGE = 1_100_000  # characters: more than the reader's 1 MiB Arrow block
REASONS = {r.value for r in Reason}

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

chars = st.characters(codec="utf-8", exclude_characters="\r" + BAD_UTF8)
garbage_text = st.text(chars, max_size=12)
odd_values = st.sampled_from(
    [
        *("nan", "inf", "-inf", "-1", "-0", "1e400", "5.5", "", "   ", "0x10", "NULL", "٣"),
        *("1,5", "two\nlines", '"quoted", comma', "\n", "\t", "é" * 40),
    ]
)
rule_breaks = st.sampled_from(
    [
        {"price": "-1.5"},
        {"price": ""},
        {"event_type": "click"},
        {"event_type": ""},
        {"product_id": ""},
        {"user_id": " "},
        {"event_time": ""},
        {"product_id": "5.5", "price": "-1"},
    ]
)
garbage = st.one_of(garbage_text, odd_values)


def _zone(minutes: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(minutes=minutes))


@st.composite
def good_times(draw: st.DrawFn) -> str:
    """Timestamps the contract accepts: 'YYYY-MM-DD hh:mm:ss UTC' or ISO 8601 with an offset.

    Accepted event times lie in 1900..2199 (UTC); a day of margin keeps offsets inside it.
    """
    when = draw(st.datetimes(dt.datetime(1900, 1, 2), dt.datetime(2199, 12, 30)))
    if draw(st.booleans()):
        return (
            f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} UTC"
        )
    offset = draw(st.integers(-14 * 60, 14 * 60).map(lambda m: m - m % 15))
    text = when.replace(tzinfo=_zone(offset)).isoformat()
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


odd_times = st.one_of(
    good_times(),
    st.sampled_from(
        [
            "0001-01-01 00:00:00 UTC",  # out of range: malformed
            "9999-12-31 23:59:59 UTC",
            "1899-12-31 23:59:59 UTC",
            "2200-01-01 00:00:00 UTC",
            "10000-01-01 00:00:00 UTC",
            "2016-12-31 23:59:60 UTC",  # leap second
            "2019-10-01 23:59:60+00:00",
            "2019-10-01 00:00:00",  # no zone
            "2019-10-01T00:00:00",
            "2019-10-01 00:00:00 +25:00",
            "2019-10-01 00:00:00 Mars/Olympus",
            "2019-02-29 00:00:00 UTC",
            "2019-10-01 24:00:00 UTC",
            "yesterday",
            "",
        ]
    ),
    garbage_text,
)


@dataclass
class Written:
    """What a generated file holds, known without reading it back."""

    text: bytes
    rows: int  # non-blank data rows
    tokens: Counter[int] = field(default_factory=Counter)
    lines: dict[int, set[int]] = field(default_factory=dict)  # token -> lines it starts on
    kinds: dict[int, str] = field(default_factory=dict)  # token -> kind of row
    multiline: bool = False


def _valid_fields(draw: st.DrawFn, token: str) -> dict[str, str]:
    return {
        "event_time": draw(good_times()),
        "event_type": draw(st.sampled_from(EVENT_TYPES)),
        "product_id": str(draw(st.integers(0, 2**62))),
        "category_id": draw(st.one_of(st.just(""), st.integers(0, 2**63 - 1).map(str))),
        "category_code": draw(garbage_text),
        "brand": draw(garbage_text),
        "price": draw(st.decimals(0, 10**6, places=2).map(str)),
        "user_id": str(draw(st.integers(-(2**62), 2**62))),
        "user_session": token,
    }


def _row(draw: st.DrawFn, kind: str, token: str) -> list[str] | dict[str, str]:
    values = _valid_fields(draw, token)
    if kind == "rule_break":
        values.update(draw(rule_breaks))
    elif kind == "garbage_field":
        name = draw(st.sampled_from([c for c in EVENT_COLUMNS if c != "user_session"]))
        values[name] = draw(garbage)
    elif kind == "odd_time":
        values["event_time"] = draw(odd_times)
    elif kind == "bad_utf8":
        name = draw(st.sampled_from(["brand", "category_code", "event_type", "price"]))
        values[name] = values[name] + BAD_UTF8
    elif kind == "wrong_count":
        width = draw(st.sampled_from([1, 2, 3, 5, 8, 10, 11, 14]))
        cells = draw(st.lists(garbage, min_size=width - 1, max_size=width - 1))
        cells.insert(draw(st.integers(0, width - 1)), token)
        return cells
    return values


@st.composite
def csv_files(draw: st.DrawFn) -> Written:
    columns = list(EVENT_COLUMNS)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    header = [c.upper() if draw(st.booleans()) else c for c in columns]
    bom = "\ufeff" if draw(st.booleans()) else ""
    kinds = ["valid"] * 4 + ["garbage_field", "rule_break", "odd_time"] * 2
    kinds += ["wrong_count", "bad_utf8", "dup", "dup", "blank"]
    specs = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=25))
    huge_at = draw(st.integers(0, len(specs) - 1)) if draw(st.integers(0, 4)) == 0 else None

    parts = [bom + csv_line(header)]
    line = 2
    out = Written(b"", 0)
    earlier: list[tuple[int, str]] = []  # (token, record text) of rows written so far
    for i, spec in enumerate(specs):
        if spec == "blank":
            parts.append("\n")
            line += 1
            continue
        if spec == "dup" and earlier:
            token, record = draw(st.sampled_from(earlier))
        else:
            kind = "valid" if spec == "dup" else spec
            token = i
            row = _row(draw, kind, f"tok{token}q")
            cells = row if isinstance(row, list) else [row[c] for c in columns]
            if i == huge_at:
                cells[-1 if isinstance(row, list) else columns.index("brand")] += "H" * HUGE
            if huge_at is not None:
                # Keep clear of the known fallback bug: no quoted newline in a file with a huge field.
                cells = [c.replace("\n", " ") for c in cells]
            record = csv_line(cells)
            out.kinds[token] = kind
            earlier.append((token, record))
        parts.append(record)
        out.rows += 1
        out.tokens[token] += 1
        out.lines.setdefault(token, set()).add(line)
        out.multiline = out.multiline or record.count("\n") > 1
        line += record.count("\n")
    out.text = "".join(parts).encode("utf-8").replace(BAD_UTF8.encode(), b"\xff\xfe")
    return out


def _check_counts(report: dict[str, Any], written: Written) -> None:
    for reason in report["by_reason"]:
        event(f"quarantined {reason}")
    event(f"duplicates: {'some' if report['duplicates'] else 'none'}")
    event(f"huge field: {len(written.text) > HUGE}")
    event(f"quoted newline: {written.multiline}")
    assert report["read"] == written.rows
    assert report["read"] == report["clean"] + report["quarantined"] + report["duplicates"]
    assert sum(report["by_reason"].values()) == report["quarantined"]
    assert set(report["by_reason"]) <= REASONS


def _check_lake(home: Path, report: dict[str, Any], written: Written, source: Path) -> None:
    events = read_lake(home).to_pylist()
    quarantine = read_lake(home, "quarantine").to_pylist()
    assert len(events) == report["clean"]
    assert len(quarantine) == report["quarantined"]
    assert Counter(q["reason"] for q in quarantine) == Counter(report["by_reason"])

    for ev in events:  # only events that keep the contract reach the lake
        assert ev["event_type"] in EVENT_TYPES
        assert ev["price"] >= 0
        assert ev["product_id"] is not None
        assert ev["user_id"] is not None
        brand = ev["brand"]
        assert brand is None or (brand == brand.strip(" ") != "" and not re.search("[A-Z]", brand))

    found: Counter[int] = Counter()
    for ev in events:
        found.update(int(t) for t in TOKEN.findall(ev["user_session"] or ""))
    quarantined_tokens: Counter[int] = Counter()
    for q in quarantine:
        assert q["source"] == str(source)
        assert q["reason"] in REASONS
        assert q["raw"]
        tokens = [int(t) for t in TOKEN.findall(q["raw"])]
        assert len(set(tokens)) == 1, q
        quarantined_tokens[tokens[0]] += 1
        if not written.multiline:
            assert q["line"] in written.lines[tokens[0]], q

    # Nothing lost: every row is in the lake, in quarantine, or a counted duplicate.
    assert set(found) | set(quarantined_tokens) == set(written.tokens)
    for token, copies in written.tokens.items():
        assert 1 <= found[token] + quarantined_tokens[token] <= copies
    assert sum(found.values()) + sum(quarantined_tokens.values()) + report["duplicates"] == (
        written.rows
    )

    for token, kind in written.kinds.items():
        if kind == "valid":
            assert quarantined_tokens[token] == 0, (token, quarantine)
        elif kind in ("wrong_count", "bad_utf8"):
            assert found[token] == 0
            assert all(q["reason"] == "malformed" for q in quarantine if f"tok{token}q" in q["raw"])


@PROPERTY_SETTINGS
@given(written=csv_files())
def test_any_csv_file_is_ingested_without_loss(written: Written) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "events.csv"
        source.write_bytes(written.text)
        home = Path(tmp) / "home"
        report = ingest(home, source)
        _check_counts(report, written)
        _check_lake(home, report, written, source)


# --- NDJSON ------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    garbage_text,
)


@st.composite
def ndjson_files(draw: st.DrawFn) -> Written:
    out = Written(b"", 0)
    lines: list[str] = []
    for i in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(["valid", "valid", "odd", "not_object", "broken", "blank"]))
        token = f"tok{i}q"
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  "])))
            continue
        values: dict[str, object] = dict(_valid_fields(draw, token))
        if kind == "valid":
            values["product_id"] = int(str(values["product_id"]))
            values["price"] = float(str(values["price"]))
        elif kind == "odd":
            name = draw(st.sampled_from([c for c in EVENT_COLUMNS if c != "user_session"]))
            values[name] = draw(json_scalars)
        text = json.dumps(values, ensure_ascii=draw(st.booleans()))
        if kind == "not_object":
            text = json.dumps([values])
        elif kind == "broken":
            text = text[: draw(st.integers(1, len(text) - 1))]
            if TOKEN.search(text) is None:
                text += f" tok{i}q"
        lines.append(text)
        out.rows += 1
        out.tokens[i] += 1
        out.lines[i] = {len(lines)}
        out.kinds[i] = {"not_object": "wrong_count", "broken": "wrong_count"}.get(kind, kind)
    out.text = ("\n".join(lines) + "\n").encode()
    return out


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(written=ndjson_files())
def test_any_ndjson_file_is_ingested_without_loss(written: Written) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "events.ndjson"
        source.write_bytes(written.text)
        home = Path(tmp) / "home"
        report = ingest(home, source)
        _check_counts(report, written)
        _check_lake(home, report, written, source)
