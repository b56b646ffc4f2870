"""The `models` settings section: defaults, environment overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartpulse.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where no cartpulse.toml can be picked up."""
    monkeypatch.chdir(tmp_path)


def test_defaults_and_horizons_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().models.forecast_horizons_days == (7, 14, 28)
    monkeypatch.setenv("CARTPULSE_MODELS__FORECAST_HORIZONS_DAYS", "[28, 7, 7]")
    monkeypatch.setenv("CARTPULSE_MODELS__CLV_MONTHLY_DISCOUNT", "0.02")
    models = load_settings().models
    assert models.forecast_horizons_days == (7, 28)
    assert models.clv_monthly_discount == 0.02


def test_a_bad_horizon_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_MODELS__FORECAST_HORIZONS_DAYS", "[0]")
    with pytest.raises(SettingsError, match=r"models\.forecast_horizons_days.*between 1 and 366"):
        load_settings()
