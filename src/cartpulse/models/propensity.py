"""P(purchase in the session | item carted): gradient boosting, calibrated, split by time.

The carted items are ordered by cart time and cut into three consecutive slices: the model is
fitted on the oldest, its probabilities are calibrated (isotonic) on the next, and everything
is measured on the newest slice, which neither step has seen, as it will be used: trained on
the past, scoring the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from cartpulse.models.propensity_data import FEATURES

CALIBRATION_BINS = 10


class PropensityError(ValueError):
    """Too little data, or only one outcome, in a slice of the time split."""


@dataclass(frozen=True)
class PropensitySplit:
    """Row positions of the fit, calibration and validation slices (in time order)."""

    fit: slice
    calibrate: slice
    validate: slice


def time_split(n_rows: int, validation_share: float, calibration_share: float) -> PropensitySplit:
    """Consecutive slices of rows already sorted by cart time: oldest fit, newest validate."""
    n_validate = int(n_rows * validation_share)
    n_calibrate = int(n_rows * calibration_share)
    n_fit = n_rows - n_validate - n_calibrate
    if min(n_fit, n_calibrate, n_validate) < 50:
        raise PropensityError(
            f"{n_rows} carted items are too few for a fit/calibration/validation split by time"
        )
    return PropensitySplit(
        slice(0, n_fit), slice(n_fit, n_fit + n_calibrate), slice(n_fit + n_calibrate, n_rows)
    )


def feature_matrix(items: pa.Table) -> NDArray[np.float64]:
    """The model's inputs as a float matrix (missing values as NaN, which the trees handle)."""
    columns = [
        items.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy() for name in FEATURES
    ]
    return np.column_stack(columns)


def labels(items: pa.Table) -> NDArray[np.int8]:
    """1 where the carted product was bought in the session."""
    return np.asarray(items.column("purchased").to_numpy(zero_copy_only=False), dtype=np.int8)


def _check_both_outcomes(y: NDArray[np.int8], where: str) -> None:
    if y.min() == y.max():
        raise PropensityError(f"the {where} slice has only one outcome: nothing to learn from")


def fit_propensity(
    x: NDArray[np.float64], y: NDArray[np.int8], split: PropensitySplit, seed: int
) -> CalibratedClassifierCV:
    """Gradient-boosted trees on the fit slice, isotonic calibration on the calibration slice."""
    _check_both_outcomes(y[split.fit], "fit")
    _check_both_outcomes(y[split.calibrate], "calibration")
    trees = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.08,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    trees.fit(x[split.fit], y[split.fit])
    calibrated = CalibratedClassifierCV(FrozenEstimator(trees), method="isotonic")
    calibrated.fit(x[split.calibrate], y[split.calibrate])
    return calibrated


def predict(model: CalibratedClassifierCV, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Calibrated probability of purchase per row."""
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def calibration_table(y: NDArray[np.int8], p: NDArray[np.float64]) -> list[dict[str, Any]]:
    """Per decile of predicted probability: rows, mean prediction, observed purchase rate."""
    # Deciles by rank, not by value: isotonic calibration makes many tied probabilities.
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[np.argsort(p, kind="stable")] = np.arange(len(p))
    bins = ranks * CALIBRATION_BINS // max(len(p), 1)
    table = []
    for b in range(CALIBRATION_BINS):
        rows = bins == b
        if rows.any():
            table.append(
                {
                    "bin": b + 1,
                    "rows": int(rows.sum()),
                    "mean_predicted": round(float(p[rows].mean()), 4),
                    "observed_rate": round(float(y[rows].mean()), 4),
                }
            )
    return table


def evaluate(y: NDArray[np.int8], p: NDArray[np.float64]) -> dict[str, Any]:
    """AUC, Brier score, log loss and the calibration table on held-out rows."""
    _check_both_outcomes(y, "validation")
    base_rate = float(y.mean())
    return {
        "validation_rows": len(y),
        "base_rate": round(base_rate, 4),
        "auc": round(float(roc_auc_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        # Brier of always predicting the base rate: the bar a useful model must get under.
        "brier_base_rate": round(base_rate * (1 - base_rate), 4),
        "log_loss": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))), 4),
        "mean_predicted": round(float(p.mean()), 4),
        "calibration": calibration_table(y, p),
    }
