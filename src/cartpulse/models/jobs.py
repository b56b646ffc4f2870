"""Train and score the three models against a DuckDB connection with the lake attached.

`train_*` fit a model on the lake and save a new version (files + `model_versions` row);
`score_*` apply the latest version and replace the model's mart. Each takes the connection, so
`cartpulse serve` can run them in-process on its warehouse; the CLI runs them through
`cartpulse.models.runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import duckdb
from threadpoolctl import threadpool_limits

from cartpulse.models import (
    clv_mart,
    forecast_backtest,
    forecast_mart,
    propensity,
    propensity_mart,
)
from cartpulse.models.forecast import ForecastConfig, is_intermittent
from cartpulse.models.lake import EVENTS, ModelDataError, replace_table
from cartpulse.models.propensity_data import FEATURES, carted_items
from cartpulse.models.registry import (
    ModelVersion,
    latest_version,
    record_version,
    save_version,
)
from cartpulse.settings import Settings

MODEL_NAMES = ("clv", "forecast", "propensity")


def _finish(con: duckdb.DuckDBPyConnection, version: ModelVersion) -> ModelVersion:
    record_version(con, version)
    return version


def train_clv(con: duckdb.DuckDBPyConnection, settings: Settings) -> ModelVersion:
    """Fit BG/NBD + Gamma-Gamma on every buyer's purchase days; save a version."""
    summary = clv_mart.customer_summary(con)
    fitted = clv_mart.fit_summary(summary)
    frequency = summary.column("frequency").to_numpy()
    params = {**fitted.as_dict(), "time_unit": "day"}
    metrics = {
        "customers": summary.num_rows,
        "repeat_buyers": int((frequency > 0).sum()),
        "bgnbd_log_likelihood": round(fitted.bgnbd_log_likelihood, 3),
        "gamma_gamma_log_likelihood": round(fitted.gamma_gamma_log_likelihood, 3),
    }
    return _finish(con, save_version(settings.models_dir, "clv", params, metrics))


def score_clv(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Write `mart_customer_ltv` with the latest CLV version; return its row count."""
    version = latest_version(settings.models_dir, "clv")
    summary = clv_mart.customer_summary(con)
    table = clv_mart.score_customers(
        summary,
        clv_mart.params_from_dict(version.params),
        settings.models.clv_horizon_months,
        settings.models.clv_monthly_discount,
        version.version,
        datetime.now(UTC),
    )
    return replace_table(con, clv_mart.TABLE_CUSTOMER_LTV, table)


def train_forecast(con: duckdb.DuckDBPyConnection, settings: Settings) -> ModelVersion:
    """Tune smoothing by rolling-origin backtest, score it against seasonal naive; save."""
    data = forecast_mart.daily_purchases(con)
    horizons, origins = (
        settings.models.forecast_horizons_days,
        settings.models.forecast_backtest_origins,
    )
    config = forecast_backtest.tune(data.counts, data.first_weekday, horizons, origins)
    scores = forecast_backtest.backtest(
        data.counts,
        data.first_weekday,
        horizons,
        origins,
        config,
        settings.models.forecast_interval,
    )
    params = {**asdict(config), "dispersion": {str(s.horizon_days): s.dispersion for s in scores}}
    metrics = {
        "products": len(data.product_ids),
        "days": data.counts.shape[1],
        "intermittent_products": int(is_intermittent(data.counts).sum()),
        "backtest_origins": len(
            forecast_backtest.origins(data.counts.shape[1], max(horizons), origins)
        ),
        "horizons": [s.as_dict() for s in scores],
    }
    return _finish(con, save_version(settings.models_dir, "forecast", params, metrics))


def score_forecast(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Write `mart_product_forecast` with the latest forecast version; return its row count."""
    version = latest_version(settings.models_dir, "forecast")
    fields = {k: v for k, v in version.params.items() if k in ForecastConfig.__dataclass_fields__}
    dispersion = {int(h): float(d) for h, d in version.params["dispersion"].items()}
    missing = set(settings.models.forecast_horizons_days) - set(dispersion)
    if missing:
        raise ModelDataError(
            f"forecast {version.version} was trained without horizons {sorted(missing)}: "
            "run `cartpulse models train --model forecast` again"
        )
    table = forecast_mart.score_products(
        forecast_mart.daily_purchases(con),
        ForecastConfig(**fields),
        {h: dispersion[h] for h in settings.models.forecast_horizons_days},
        settings.models.forecast_interval,
        version.version,
        datetime.now(UTC),
    )
    return replace_table(con, forecast_mart.TABLE_PRODUCT_FORECAST, table)


def train_propensity(con: duckdb.DuckDBPyConnection, settings: Settings) -> ModelVersion:
    """Fit and calibrate the propensity model on older carts, measure it on the newest; save."""
    cfg = settings.models
    items = carted_items(con)
    x, y = propensity.feature_matrix(items), propensity.labels(items)
    split = propensity.time_split(
        len(y), cfg.propensity_validation_share, cfg.propensity_calibration_share
    )
    fit_rows = slice(max(0, split.fit.stop - cfg.propensity_max_fit_rows), split.fit.stop)
    split = propensity.PropensitySplit(fit_rows, split.calibrate, split.validate)
    with threadpool_limits(limits=cfg.propensity_threads, user_api="openmp"):
        model = propensity.fit_propensity(x, y, split, cfg.seed)
        p_validate = propensity.predict(model, x[split.validate])
    metrics = propensity.evaluate(y[split.validate], p_validate)
    times = items.column("carted_at")
    metrics["fit_rows"] = split.fit.stop - split.fit.start
    metrics["validation_from"] = times[split.validate.start].as_py()
    params = {"features": list(FEATURES), "seed": cfg.seed, "model": "hgb+isotonic"}
    return _finish(con, save_version(settings.models_dir, "propensity", params, metrics, model))


def score_propensity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Write `mart_purchase_propensity` for items carted in the last days; return its rows."""
    version = latest_version(settings.models_dir, "propensity")
    last = (
        con.sql(f"SELECT max(event_time) FROM {EVENTS} WHERE event_type = 'cart'")
        .to_arrow_table()
        .column(0)[0]
        .as_py()
    )
    if last is None:
        raise ModelDataError("the lake has no cart events: nothing to score")
    recent = carted_items(con, last - timedelta(days=settings.models.propensity_score_days))
    with threadpool_limits(limits=settings.models.propensity_threads, user_api="openmp"):
        model = version.load_artifact()
        probability = propensity.predict(model, propensity.feature_matrix(recent))
    table = propensity_mart.propensity_by_product(
        recent, probability, datetime.now(UTC), version.version
    )
    return replace_table(con, propensity_mart.TABLE_PURCHASE_PROPENSITY, table)


TRAINERS: dict[str, Callable[[duckdb.DuckDBPyConnection, Settings], ModelVersion]] = {
    "clv": train_clv,
    "forecast": train_forecast,
    "propensity": train_propensity,
}
SCORERS: dict[str, Callable[[duckdb.DuckDBPyConnection, Settings], int]] = {
    "clv": score_clv,
    "forecast": score_forecast,
    "propensity": score_propensity,
}
MART_OF = {
    "clv": clv_mart.TABLE_CUSTOMER_LTV,
    "forecast": forecast_mart.TABLE_PRODUCT_FORECAST,
    "propensity": propensity_mart.TABLE_PURCHASE_PROPENSITY,
}
