"""`cartpulse clv fit` and `cartpulse models train|score|list` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cdnow import CDNOW_SUMMARY as CDNOW
from tests.cdnow import PUBLISHED
from tests.conftest import require_data, run_cli


def test_clv_fit_prints_the_published_cdnow_parameters(tmp_path: Path) -> None:
    summary = tmp_path / "cdnow_summary.csv"
    summary.write_bytes(require_data(CDNOW).read_bytes())
    res = run_cli("clv", "fit", str(summary), "--json")
    assert res.code == 0, res.stderr
    params = res.json()
    assert set(params) == set(PUBLISHED)
    for key, value in PUBLISHED.items():
        assert params[key] == pytest.approx(value, rel=0.01), key


def test_clv_fit_names_the_missing_column(tmp_path: Path) -> None:
    bad = tmp_path / "summary.csv"
    bad.write_text("frequency,recency,monetary_value\n1,2,3\n")
    res = run_cli("clv", "fit", str(bad))
    assert res.code == 2
    assert "lacks column(s) T" in res.stderr and "Traceback" not in res.stderr


def test_models_need_a_lake_and_a_trained_version(home: Path, tmp_path: Path) -> None:
    empty = run_cli("models", "train", home=home)
    assert empty.code == 2 and "cartpulse ingest" in empty.stderr
    data = tmp_path / "data"
    assert run_cli("generate", "--out", str(data), "--events", "20000", "--days", "8").code == 0
    assert run_cli("ingest", str(data / "events.csv.gz"), home=home).code == 0
    untrained = run_cli("models", "score", "--model", "clv", home=home)
    assert untrained.code == 2 and "cartpulse models train" in untrained.stderr
    unknown = run_cli("models", "train", "--model", "churn", home=home)
    assert unknown.code == 2 and "clv, forecast, propensity" in unknown.stderr
    # Eight days cannot backtest a 28-day horizon: the error says how much history is needed.
    short = run_cli("models", "train", "--model", "forecast", home=home)
    assert short.code == 2 and "need at least 49 days" in short.stderr


def test_train_score_list_and_query_the_marts(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run_cli("generate", "--out", str(data), "--events", "30000", "--days", "56").code == 0
    assert run_cli("ingest", str(data / "events.csv.gz"), home=home).code == 0

    train = run_cli("models", "train", "--json", home=home)
    assert train.code == 0, train.stderr
    reports = {r["model"]: r for r in train.json()}
    assert set(reports) == {"clv", "forecast", "propensity"}
    for name, report in reports.items():
        assert report["version"] == "v0001"
        assert (home / "models" / name / "v0001" / "metrics.json").is_file()
        assert report["mart_rows"] > 0
    assert (home / "models" / "propensity" / "v0001" / "model.pkl").is_file()

    score = run_cli("models", "score", "-m", "forecast", "--json", home=home)
    assert score.code == 0, score.stderr
    assert [(r["model"], r["version"]) for r in score.json()] == [("forecast", "v0001")]

    listed = run_cli("models", "list", "--json", home=home).json()
    assert [(m["model"], m["version"]) for m in listed] == [
        ("clv", "v0001"),
        ("forecast", "v0001"),
        ("propensity", "v0001"),
    ]
    auc = run_cli(
        "query",
        "SELECT metrics->>'$.auc' AS auc FROM model_versions_latest WHERE name = 'propensity'",
        "--json",
        home=home,
    ).json()
    assert float(auc[0]["auc"]) == listed[2]["metrics"]["auc"]
    top = run_cli(
        "query",
        "SELECT count(*) AS n FROM mart_product_forecast WHERE rank = 1",
        "--json",
        home=home,
    ).json()
    assert top == [{"n": 3}]


def test_help_teaches_the_verbs() -> None:
    res = run_cli("models", "--help")
    assert res.code == 0
    for verb in ("train", "score", "list", "docs/models.md"):
        assert verb in res.stdout
