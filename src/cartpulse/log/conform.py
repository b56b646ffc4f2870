"""Check that appended data has the log's schema, and relabel it with exactly that schema."""

from __future__ import annotations

import pyarrow as pa

from cartpulse.log.base import SchemaMismatchError


def check_log_schema(schema: pa.Schema) -> None:
    """Refuse schemas the log cannot store batch by batch."""
    for field in schema:
        if pa.types.is_dictionary(field.type):
            # Dictionary batches would have to be replayed before every read; not worth it here.
            raise SchemaMismatchError(
                f"column `{field.name}` is dictionary-encoded ({field.type}); the event log "
                "stores plain columns: decode it (`.dictionary_decode()`) before logging"
            )


def conform(data: pa.RecordBatch | pa.Table, schema: pa.Schema) -> list[pa.RecordBatch]:
    """The non-empty batches of `data`, carrying `schema` itself; raise if they cannot."""
    if not isinstance(data, pa.RecordBatch | pa.Table):
        raise SchemaMismatchError(
            f"the event log stores pyarrow RecordBatch or Table, got {type(data).__name__}"
        )
    problems = schema_differences(data.schema, schema)
    problems += _nulls_in_required(data, schema)
    if problems:
        raise SchemaMismatchError(
            "batch does not match the event log's schema: " + "; ".join(problems)
        )
    chunks = data.to_batches() if isinstance(data, pa.Table) else [data]
    # Relabelling is zero-copy; it drops metadata and nullability flags that differ only in
    # form, so every stored batch carries the one schema readers decode with.
    return [pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in chunks if b.num_rows]


def schema_differences(actual: pa.Schema, expected: pa.Schema) -> list[str]:
    """What differs between two schemas in names, order and types (not nullability)."""
    problems: list[str] = []
    missing = [n for n in expected.names if n not in actual.names]
    extra = [n for n in actual.names if n not in expected.names]
    if missing:
        problems.append("missing columns " + ", ".join(f"`{n}`" for n in missing))
    if extra:
        problems.append("unexpected columns " + ", ".join(f"`{n}`" for n in extra))
    if not missing and not extra and actual.names != expected.names:
        problems.append(f"columns in order {actual.names}, expected {expected.names}")
    for field in expected:
        if field.name in actual.names:
            got = actual.field(field.name).type
            if not got.equals(field.type):
                problems.append(f"column `{field.name}` is {got}, expected {field.type}")
    return problems


def _nulls_in_required(data: pa.RecordBatch | pa.Table, schema: pa.Schema) -> list[str]:
    problems: list[str] = []
    for field in schema:
        if field.nullable or field.name not in data.schema.names:
            continue
        nulls = int(data.column(field.name).null_count)
        if nulls:
            problems.append(f"column `{field.name}` has {nulls} nulls but is required")
    return problems
