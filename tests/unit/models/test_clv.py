"""BG/NBD and Gamma-Gamma against the published CDNOW estimates."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cartpulse.models import clv
from tests.cdnow import CDNOW_SUMMARY as CDNOW
from tests.cdnow import PUBLISHED
from tests.conftest import require_data


def _cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with require_data(CDNOW).open() as fh:
        rows = list(csv.DictReader(fh))
    return tuple(  # type: ignore[return-value]
        np.array([float(r[c]) for r in rows])
        for c in ("frequency", "recency", "T", "monetary_value")
    )


@pytest.fixture(scope="module")
def fitted() -> clv.ClvParams:
    return clv.fit_clv(*_cdnow())


def test_cdnow_parameters_within_one_percent(fitted: clv.ClvParams) -> None:
    for key, published in PUBLISHED.items():
        assert fitted.as_dict()[key] == pytest.approx(published, rel=0.01), key


def test_cdnow_log_likelihood_matches_the_paper(fitted: clv.ClvParams) -> None:
    assert fitted.bgnbd_log_likelihood == pytest.approx(-9582.4, abs=0.5)


def test_conditional_expectation_of_the_papers_example_customer(fitted: clv.ClvParams) -> None:
    one = np.array
    expected = clv.expected_purchases(fitted.bgnbd, 39, one([2.0]), one([30.43]), one([38.86]))
    assert expected[0] == pytest.approx(1.226, abs=0.002)


def test_a_customer_silent_for_long_is_less_likely_alive(fitted: clv.ClvParams) -> None:
    x, t = np.array([3.0, 3.0]), np.array([38.0, 38.0])
    recent_then_silent = clv.probability_alive(fitted.bgnbd, x, np.array([37.0, 5.0]), t)
    assert recent_then_silent[0] > 0.8
    assert recent_then_silent[1] < 0.1
    assert clv.probability_alive(fitted.bgnbd, np.array([0.0]), np.array([0.0]), t[:1])[0] == 1.0


def test_expected_spend_shrinks_towards_the_population_mean(fitted: clv.ClvParams) -> None:
    gg = fitted.gamma_gamma
    population = gg.p * gg.gamma / (gg.q - 1)
    few, many = clv.expected_spend(gg, np.array([1.0, 20.0]), np.array([100.0, 100.0]))
    assert population < few < many < 100.0
    assert clv.expected_spend(gg, np.array([0.0]), np.array([0.0]))[0] == pytest.approx(population)


def test_discounting_lowers_value_and_longer_horizons_raise_it(fitted: clv.ClvParams) -> None:
    x, t_x, t, m = _cdnow()

    def value(months: int, discount: float) -> float:
        # the summary is in weeks: 7 days per unit
        return float(clv.customer_value(fitted, x, t_x, t, m, months, discount, 7.0).sum())

    assert value(12, 0.05) < value(12, 0.0) < value(24, 0.0)
    undiscounted = clv.expected_purchases(fitted.bgnbd, 12 * 30 / 7, x, t_x, t)
    spend = clv.expected_spend(fitted.gamma_gamma, x, m)
    assert value(12, 0.0) == pytest.approx(float((undiscounted * spend).sum()), rel=1e-9)


def test_folding_duplicate_customers_gives_the_same_fit() -> None:
    x, t_x, t, _ = _cdnow()
    twice = clv.fit_bgnbd(np.tile(x, 2), np.tile(t_x, 2), np.tile(t, 2))[0]
    once = clv.fit_bgnbd(x, t_x, t)[0]
    for name in ("r", "alpha", "a", "b"):
        assert getattr(twice, name) == pytest.approx(getattr(once, name), rel=1e-3)


def test_no_repeat_buyers_is_a_clear_error() -> None:
    zeros, t = np.zeros(20), np.full(20, 10.0)
    with pytest.raises(clv.FitError, match="no customer bought more than once"):
        clv.fit_clv(zeros, zeros, t, zeros)


def test_recency_after_t_is_refused() -> None:
    with pytest.raises(clv.FitError, match="recency"):
        clv.fit_bgnbd(np.ones(20), np.full(20, 12.0), np.full(20, 10.0))
