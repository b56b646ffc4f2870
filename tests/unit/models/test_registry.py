"""Model versions on disk and in the warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartpulse import duck
from cartpulse.models.registry import (
    ModelNotTrainedError,
    latest_version,
    record_version,
    save_version,
)


def test_versions_count_up_and_the_latest_is_read_back(tmp_path: Path) -> None:
    first = save_version(tmp_path, "clv", {"r": 0.2}, {"customers": 10})
    second = save_version(tmp_path, "clv", {"r": 0.3}, {"customers": 12}, artifact={"k": [1, 2]})
    assert (first.version, second.version) == ("v0001", "v0002")
    latest = latest_version(tmp_path, "clv")
    assert (latest.version, latest.params, latest.metrics) == (
        "v0002",
        {"r": 0.3},
        {"customers": 12},
    )
    assert latest.trained_at == second.trained_at
    assert latest.load_artifact() == {"k": [1, 2]}
    assert not list((tmp_path / "clv").glob(".*"))  # no staging folders left behind


def test_an_untrained_model_says_how_to_train_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotTrainedError, match="cartpulse models train"):
        latest_version(tmp_path, "forecast")


def test_the_latest_view_shows_one_row_per_model(tmp_path: Path) -> None:
    con = duck.connect(tmp_path / "warehouse.duckdb")
    for name, auc in (("propensity", 0.7), ("propensity", 0.8), ("clv", None)):
        record_version(con, save_version(tmp_path / "models", name, {}, {"auc": auc}))
    rows = con.execute(
        "SELECT name, version, metrics->>'$.auc' FROM model_versions_latest ORDER BY name"
    ).fetchall()
    con.close()
    assert rows == [("clv", "v0001", None), ("propensity", "v0002", "0.8")]
