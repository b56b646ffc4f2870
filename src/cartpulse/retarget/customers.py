"""The customer directory in DuckDB: import from CSV, unsubscribe, and who may be mailed.

`import_customers` reads `user_id,email,first_name,locale,consent` (header names in any case,
any column order, unknown columns ignored). Each row is upserted into `customers` or lands in
`customer_rejects` with its raw line and a reason code, so `read = upserted + rejected`.
An import never clears `unsubscribed_at`: only the user can undo an unsubscribe.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb
import pyarrow as pa
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email

from cartpulse.duck import arrow, registered

DEFAULT_LOCALE: Final = "en_US"
COLUMNS: Final = ("user_id", "email", "first_name", "locale", "consent")
REQUIRED_COLUMNS: Final = ("user_id", "email", "consent")
REASONS: Final = (
    "malformed", "missing_user_id", "bad_user_id", "invalid_email", "bad_consent", "bad_locale",
)  # fmt: skip
CHUNK_ROWS = 200_000  # rows validated and written per step: bounds memory on big files
MAX_USER_ID = 2**63 - 1
_CONSENT: Final = {
    "true": True, "1": True, "yes": True, "y": True,
    "false": False, "0": False, "no": False, "n": False,
}  # fmt: skip

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS customers (
    user_id BIGINT PRIMARY KEY, email VARCHAR, first_name VARCHAR, locale VARCHAR,
    consent BOOLEAN NOT NULL, unsubscribed_at TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_rejects (
    raw VARCHAR, reason VARCHAR, detail VARCHAR, source VARCHAR, line BIGINT,
    imported_at TIMESTAMPTZ
);
"""

# Within one file the last row of a user wins; unsubscribed_at is never in the update list.
_UPSERT_SQL = """
INSERT INTO customers
SELECT user_id, email, first_name, locale, consent, NULL, $now
FROM (
    SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY line DESC) AS newest
    FROM _retarget_customers
) WHERE newest = 1
ON CONFLICT (user_id) DO UPDATE SET
    email = excluded.email, first_name = excluded.first_name, locale = excluded.locale,
    consent = excluded.consent, updated_at = excluded.updated_at
"""

_VALID_SCHEMA = pa.schema([
    ("user_id", pa.int64()), ("email", pa.string()), ("first_name", pa.string()),
    ("locale", pa.string()), ("consent", pa.bool_()), ("line", pa.int64()),
])  # fmt: skip


class CustomerFileError(ValueError):
    """The customer file cannot be imported at all (unreadable, empty, required column missing)."""


@dataclass
class ImportReport:
    """What an import did: `read = upserted + rejected`, rejects counted by reason code."""

    source: str
    read: int = 0
    upserted: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for `--json` output and logs."""
        return asdict(self)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create `customers` and `customer_rejects` if they do not exist."""
    con.execute(_SCHEMA_SQL)


def import_customers(con: duckdb.DuckDBPyConnection, path: Path, now: datetime) -> ImportReport:
    """Upsert valid rows of a customers CSV into `customers`, reject the rest; one transaction."""
    _require_aware(now)
    ensure_schema(con)
    report = ImportReport(source=str(path))
    reasons: Counter[str] = Counter()
    con.begin()
    try:
        for valid, rejects in _validated_chunks(path):
            report.read += len(valid["user_id"]) + len(rejects)
            report.upserted += len(valid["user_id"])
            report.rejected += len(rejects)
            reasons.update(reason for _, reason, _, _ in rejects)
            _write_chunk(con, valid, rejects, str(path), now)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    report.by_reason = {reason: reasons[reason] for reason in REASONS if reasons[reason]}
    return report


def unsubscribe(con: duckdb.DuckDBPyConnection, user_id: int, when: datetime) -> None:
    """Never mail this user again; a user not yet in the directory is remembered as unsubscribed."""
    _require_aware(when)
    ensure_schema(con)
    # Keep the first unsubscribe time: a second click (or a mail client's retry) changes nothing.
    con.execute(
        """
        INSERT INTO customers (user_id, consent, unsubscribed_at, updated_at)
        VALUES ($user_id, false, $when, $when)
        ON CONFLICT (user_id) DO UPDATE SET
            unsubscribed_at = coalesce(customers.unsubscribed_at, excluded.unsubscribed_at),
            updated_at = excluded.updated_at
        """,
        {"user_id": int(user_id), "when": when},
    )


def eligibility(
    con: duckdb.DuckDBPyConnection, user_ids: Iterable[int] | pa.Array | pa.ChunkedArray
) -> pa.Table:
    """Directory rows (email, name, locale, consent, unsubscribed_at) of these users, if known."""
    if isinstance(user_ids, pa.Array | pa.ChunkedArray):
        ids = pa.table({"user_id": user_ids.cast(pa.int64())})
    else:
        ids = pa.table({"user_id": pa.array(list(user_ids), pa.int64())})
    with registered(con, _retarget_ids=ids):
        table = arrow(
            con,
            """
            SELECT c.user_id, c.email, c.first_name, c.locale, c.consent, c.unsubscribed_at
            FROM customers c
            SEMI JOIN _retarget_ids i ON i.user_id = c.user_id
            ORDER BY c.user_id
            """,
        )
    # DuckDB labels TIMESTAMPTZ with the session time zone; the data contract says UTC.
    at = table.schema.get_field_index("unsubscribed_at")
    return table.set_column(at, "unsubscribed_at", table.column(at).cast(pa.timestamp("us", "UTC")))


Reject = tuple[str, str, str, int]  # raw line, reason, detail, line number


class _Invalid(NamedTuple):
    reason: str
    detail: str


def _validated_chunks(path: Path) -> Iterator[tuple[dict[str, list[Any]], list[Reject]]]:
    """Valid rows (column lists) and rejects, CHUNK_ROWS lines at a time."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CustomerFileError(f"cannot read customers file {path}: {exc.strerror}") from None
    with handle:
        lines = _decoded_lines(handle)
        positions, width = _header(path, lines)
        validator = _RowValidator(positions, width)
        valid: dict[str, list[Any]] = {name: [] for name in _VALID_SCHEMA.names}
        rejects: list[Reject] = []
        for number, text, utf8 in lines:
            if utf8:
                validator.add(number, text, valid, rejects)
            else:
                rejects.append((text, "malformed", "not valid UTF-8", number))
            if len(valid["user_id"]) + len(rejects) >= CHUNK_ROWS:
                yield valid, rejects
                valid, rejects = {name: [] for name in _VALID_SCHEMA.names}, []
        yield valid, rejects


def _decoded_lines(handle: Iterable[bytes]) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it was valid UTF-8) of every non-blank line."""
    for number, raw in enumerate(handle, start=1):
        # Invalid UTF-8 spoils one line, not the whole import: it is rejected as malformed,
        # its raw text kept with U+FFFD in place of the bad bytes.
        try:
            text, utf8 = raw.decode("utf-8"), True
        except UnicodeDecodeError:
            text, utf8 = raw.decode("utf-8", "replace"), False
        text = text.rstrip("\r\n")
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield number, text, utf8


def _header(path: Path, lines: Iterator[tuple[int, str, bool]]) -> tuple[dict[str, int], int]:
    """Position of each known column in the header, and the header's width."""
    first = next(lines, None)
    if first is None:
        raise CustomerFileError(
            f"customers file {path} is empty; expected header {','.join(COLUMNS)}"
        )
    names = [name.strip().lower() for name in next(csv.reader([first[1]]))]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise CustomerFileError(
            f"customers file {path} has no column {', '.join(missing)}; "
            f"header is {first[1]!r}, expected {','.join(COLUMNS)}"
        )
    if len(set(names)) != len(names):
        raise CustomerFileError(f"customers file {path} repeats a column: {first[1]!r}")
    return {name: names.index(name) for name in COLUMNS if name in names}, len(names)


class _RowValidator:
    """Checks one CSV line at a time and appends it to the valid columns or the rejects."""

    def __init__(self, positions: dict[str, int], width: int) -> None:
        self.at = positions
        self.width = width
        self.locales: dict[str, str | None] = {}  # few distinct values: parse each once

    def add(
        self, number: int, text: str, valid: dict[str, list[Any]], rejects: list[Reject]
    ) -> None:
        """Validate the line `text` and append it to `valid` or `rejects`."""
        try:
            fields = next(csv.reader([text]))
        except csv.Error as exc:
            rejects.append((text, "malformed", f"cannot parse CSV: {exc}", number))
            return
        if len(fields) != self.width:
            detail = f"{len(fields)} columns, the header has {self.width}"
            rejects.append((text, "malformed", detail, number))
            return
        row = self._check(fields)
        if isinstance(row, _Invalid):
            rejects.append((text, row.reason, row.detail, number))
            return
        for name, value in zip(COLUMNS, row, strict=True):
            valid[name].append(value)
        valid["line"].append(number)

    def _check(self, fields: list[str]) -> tuple[int, str, str | None, str, bool] | _Invalid:
        """The typed row, or why it is invalid."""
        user_id = _user_id(fields[self.at["user_id"]].strip())
        if isinstance(user_id, _Invalid):
            return user_id
        raw_email = fields[self.at["email"]].strip()
        try:
            # Per-row Python on purpose: email syntax (quoting, IDNA, Unicode normalisation) has
            # no vectorised equivalent. At ~18 µs a row it is most of a 1M-row import (≈ 25 s),
            # which runs once per customer export, not on the event hot path.
            email = validate_email(raw_email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            return _Invalid("invalid_email", str(exc) if raw_email else "email is empty")
        raw_consent = fields[self.at["consent"]].strip()
        consent = _CONSENT.get(raw_consent.lower())
        if consent is None:
            return _Invalid("bad_consent", f"{raw_consent!r} is not one of {'/'.join(_CONSENT)}")
        raw_locale = fields[self.at["locale"]].strip() if "locale" in self.at else ""
        locale = self._locale(raw_locale)
        if locale is None:
            detail = f"{raw_locale!r} is not a known locale like en_US or de_DE"
            return _Invalid("bad_locale", detail)
        name = fields[self.at["first_name"]].strip() if "first_name" in self.at else ""
        return user_id, email, name or None, locale, consent

    def _locale(self, raw: str) -> str | None:
        """Canonical locale name (`en-us` → `en_US`), the default when empty, None if unknown."""
        if not raw:
            return DEFAULT_LOCALE
        if raw not in self.locales:
            try:
                self.locales[raw] = str(Locale.parse(raw.replace("-", "_")))
            except (UnknownLocaleError, ValueError, TypeError):
                self.locales[raw] = None
        return self.locales[raw]


def _user_id(raw: str) -> int | _Invalid:
    """A positive BIGINT user id, or why the text is not one."""
    if not raw:
        return _Invalid("missing_user_id", "user_id is empty")
    if not (raw.isascii() and raw.isdigit()):  # int() would also take "1_000" or "+5"
        return _Invalid("bad_user_id", f"{raw!r} is not an integer")
    user_id = int(raw)
    if not 0 < user_id <= MAX_USER_ID:
        return _Invalid("bad_user_id", f"{raw} is outside 1..{MAX_USER_ID}")
    return user_id


def _write_chunk(
    con: duckdb.DuckDBPyConnection,
    valid: dict[str, list[Any]],
    rejects: list[Reject],
    source: str,
    now: datetime,
) -> None:
    """Bulk upsert the valid rows and append the rejects, through Arrow (no per-row INSERT)."""
    if valid["user_id"]:
        with registered(con, _retarget_customers=pa.table(valid, schema=_VALID_SCHEMA)):
            con.execute(_UPSERT_SQL, {"now": now})
    if rejects:
        raw, reason, detail, line = (list(col) for col in zip(*rejects, strict=True))
        table = pa.table(
            {"raw": raw, "reason": reason, "detail": detail, "line": pa.array(line, pa.int64())}
        )
        with registered(con, _retarget_rejects=table):
            con.execute(
                "INSERT INTO customer_rejects "
                "SELECT raw, reason, detail, $source, line, $now FROM _retarget_rejects",
                {"source": source, "now": now},
            )


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {value.isoformat()}")
