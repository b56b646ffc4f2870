"""`cartpulse spark stream` argument errors: one line, exit code 2, no JVM started."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def one_line(text: str) -> str:
    """The terminal wraps long errors; compare with single spaces."""
    return " ".join(text.split())


def test_unknown_source_names_the_two_forms(home: Path) -> None:
    result = run_cli("spark", "stream", "--source", "s3://bucket", home=home)
    assert result.code == 2
    assert "expected files:DIR or kafka" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_missing_directory_is_named(home: Path, tmp_path: Path) -> None:
    result = run_cli("spark", "stream", "--source", f"files:{tmp_path / 'nope'}", home=home)
    assert result.code == 2
    assert "is not a directory" in one_line(result.stderr)


def test_kafka_without_bootstrap_servers_says_which_setting(home: Path) -> None:
    result = run_cli("spark", "stream", "--source", "kafka", home=home)
    assert result.code == 2
    assert "CARTPULSE_SPARK__KAFKA_BOOTSTRAP_SERVERS" in one_line(result.stderr)
    assert "Using Spark" not in result.stderr  # refused before a JVM started
