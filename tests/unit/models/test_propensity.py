"""Propensity model: time split, calibration table, fit and metrics on data with known signal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from cartpulse.models import propensity as pr
from cartpulse.models.propensity_data import FEATURES


def test_time_split_keeps_the_newest_rows_for_validation() -> None:
    split = pr.time_split(1_000, 0.2, 0.1)
    assert (split.fit, split.calibrate, split.validate) == (
        slice(0, 700),
        slice(700, 800),
        slice(800, 1_000),
    )
    with pytest.raises(pr.PropensityError, match="too few"):
        pr.time_split(200, 0.2, 0.2)


def test_calibration_table_has_equal_deciles_even_with_ties() -> None:
    p = np.repeat([0.1, 0.5], 500)
    y = np.repeat(np.array([0, 1], dtype=np.int8), 500)
    table = pr.calibration_table(y, p)
    assert [row["rows"] for row in table] == [100] * 10
    assert table[0]["observed_rate"] == 0.0 and table[-1]["observed_rate"] == 1.0


def test_feature_matrix_turns_nulls_into_nan() -> None:
    columns = {name: pa.array([1, None], pa.float64()) for name in FEATURES}
    x = pr.feature_matrix(pa.table(columns))
    assert x.shape == (2, len(FEATURES))
    assert np.isnan(x[1]).all() and (x[0] == 1).all()


def _items(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Purchase odds fall with price and rise with the user's past purchases, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    logit = -1.5 - 1.2 * x[:, 0] + 1.0 * x[:, 8]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def test_fit_ranks_and_calibrates_on_a_known_signal() -> None:
    x, y = _items(12_000, seed=5)
    split = pr.time_split(len(y), 0.25, 0.25)
    model = pr.fit_propensity(x, y, split, seed=42)
    p = pr.predict(model, x[split.validate])
    metrics = pr.evaluate(y[split.validate], p)
    # The true logit reaches AUC ≈ 0.81 on this data; noise features must not hide it.
    assert metrics["auc"] > 0.75
    assert metrics["brier"] < metrics["brier_base_rate"]
    assert metrics["mean_predicted"] == pytest.approx(metrics["base_rate"], abs=0.03)


def test_same_seed_same_model() -> None:
    x, y = _items(3_000, seed=9)
    split = pr.time_split(len(y), 0.2, 0.2)
    first = pr.predict(pr.fit_propensity(x, y, split, seed=1), x[split.validate])
    second = pr.predict(pr.fit_propensity(x, y, split, seed=1), x[split.validate])
    assert np.array_equal(first, second)


def test_a_slice_with_one_outcome_is_refused() -> None:
    x = np.zeros((1_000, len(FEATURES)))
    y = np.zeros(1_000, dtype=np.int8)
    y[:300] = 1  # every purchase in the oldest rows: calibration and validation see none
    with pytest.raises(pr.PropensityError, match="calibration slice has only one outcome"):
        pr.fit_propensity(x, y, pr.time_split(1_000, 0.2, 0.2), seed=0)
