"""The one settings object: a TOML file plus CARTPULSE_* environment variables."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = "cartpulse.toml"


class SettingsError(Exception):
    """A setting is wrong; the message names the key, the value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    """How files are read, cleaned and written to the lake."""

    batch_rows: int = Field(default=500_000, ge=1_000, le=10_000_000)
    """Rows per batch read by `ingest`; the engine's largest micro-batch (replay feeds ≤ 200k)."""
    dedupe_window_s: int = Field(default=3_600, ge=3_600)
    """Exact duplicates are detected within at least this much event time (≥ 1 hour)."""
    future_tolerance_s: int = Field(default=300, ge=0)
    """Live mode: events more than this ahead of the clock are quarantined."""
    row_group_rows: int = Field(default=1_000_000, ge=10_000)
    """Rows per Parquet row group in the lake."""
    compression: Literal["zstd", "snappy", "lz4", "gzip", "none"] = "zstd"
    """Parquet compression codec of lake files."""


class SessionSettings(_Section):
    """Session and abandoned-cart definitions."""

    timeout_s: int = Field(default=1_800, ge=60, le=86_400)
    """A session expires this long after its last event."""
    allowed_lateness_s: int = Field(default=60, ge=0, le=3_600)
    """Watermark = max event time − this; later events are counted as late."""


class EngineSettings(_Section):
    """The stream engine: its serving store, and live mode (`serve`)."""

    tick_ms: int = Field(default=200, ge=10, le=10_000)
    """How often a quiet engine wakes up to expire idle sessions on the processing clock."""
    archive_interval_s: int = Field(default=60, ge=1, le=86_400)
    """Live mode: events reach the lake at least this often, even below a full row group."""
    live_threads: int = Field(default=1, ge=1, le=256)
    """DuckDB threads of the engine under `serve`, leaving the other cores to the collector."""
    checkpoint_mb: int = Field(default=256, ge=1, le=65_536)
    """warehouse.duckdb is checkpointed once its write-ahead log passes this many MiB. Each
    checkpoint rewrites the outputs' primary-key indexes: larger means fewer of them (DuckDB's
    own 16 MB made a 20.7 M-event replay 10 % slower), more memory and a longer recovery."""


class SmtpSettings(_Section):
    """Where retargeting emails are sent."""

    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=1, le=65_535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    sender: str = "Cartpulse Shop <shop@example.com>"


class RetargetSettings(_Section):
    """Abandoned-cart emails: offers, links, holdout, caps."""

    secret_key: SecretStr | None = None
    """Signs coupon codes, unsubscribe and cart links; at least 32 characters, no placeholder."""
    base_url: str = "http://127.0.0.1:8000"
    """Where links in emails point (the shop or `cartpulse serve`)."""
    shop_name: str = "Cartpulse Shop"
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of the shop's prices."""
    holdout_share: float = Field(default=0.10, ge=0.0, le=0.9)
    """Share of eligible carts not mailed, to measure recovered revenue."""
    frequency_cap_days: int = Field(default=7, ge=0, le=365)
    """At most one retargeting email per user in this many days (0 = no cap)."""
    free_shipping_below: float = Field(default=50.0, ge=0.0)
    """Carts worth less than this get free shipping; others a percentage coupon."""
    coupon_percent: int = Field(default=10, ge=1, le=90)
    coupon_valid_days: int = Field(default=7, ge=1, le=365)
    template_dir: Path | None = None
    """Your own `email.html.j2` / `email.txt.j2`; the built-in templates otherwise."""

    @field_validator("secret_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return _random_secret(value)


_PLACEHOLDERS = {"changethis" * 4, "secret" * 6, "x" * 32}


def _random_secret(value: SecretStr | None) -> SecretStr | None:
    """Refuse short or placeholder secrets (None passes: a generated one is used)."""
    if value is None:
        return None
    secret = value.get_secret_value()
    if len(secret) < 32 or secret.lower() in _PLACEHOLDERS or len(set(secret)) < 8:
        raise ValueError(
            "must be a random string of at least 32 characters, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return value


class CollectorSettings(_Section):
    """The HTTP collector."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    write_keys: Annotated[tuple[str, ...], NoDecode] = ()
    """Keys accepted in `Authorization: Bearer`; env form `key1,key2`."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body accepted (after gzip is undone); bigger bodies get 413."""
    rate_limit_events_per_s: int = Field(default=1_000_000, ge=0)
    """Events per second each write key may send (bursts of one second's worth); 0 = no limit."""
    user_rate_limit_events_per_s: float = Field(default=0.0, ge=0)
    """Events per second each user_id may send (flood guard, docs/bots.md); 0 = no limit."""
    user_rate_limit_burst_s: float = Field(default=10.0, gt=0, le=3_600)
    """A user's bucket holds this many seconds of events, so a page load's burst passes."""
    max_lag_events: int = Field(default=5_000_000, ge=1_000)
    """Backpressure: 429 while the stream engine is this many events behind the log's end."""
    max_errors: int = Field(default=100, ge=0, le=10_000)
    """Per-row errors listed in a response (the counts always cover every row)."""
    dedupe_checkpoint_s: int = Field(default=30, ge=1, le=3_600)
    """How often the collector saves its duplicate-detection state (also saved at shutdown)."""

    @field_validator("write_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value


class KafkaSettings(_Section):
    """The Kafka event log (`log.backend = "kafka"`, docs/kafka.md)."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    """Brokers to contact first, `host:port[,host:port…]`."""
    topic: str = Field(default="cartpulse-events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    """The topic of validated events; one message per event, key = user_id."""
    partition: int = Field(default=0, ge=0)
    """The partition this engine instance reads (one engine instance per partition)."""
    partitions: int = Field(default=1, ge=1, le=100_000)
    """Partitions of the topic when cartpulse creates it (an existing topic is used as is)."""
    group_prefix: str = Field(default="cartpulse", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    """Consumer offsets are committed to the Kafka group `<group_prefix>-<consumer>`."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    """How long an append waits for the brokers to acknowledge before it fails."""
    client: dict[str, str] = {}
    """Extra librdkafka properties, e.g. {"security.protocol" = "SASL_SSL", …}."""


class LogSettings(_Section):
    """The event log: where it lives and how long events stay after every consumer read them."""

    backend: Literal["embedded", "kafka"] = "embedded"
    """`embedded` (files under HOME/log) or `kafka` (settings in log.kafka)."""
    retention_hours: float = Field(default=24.0, gt=0)
    """`serve` deletes whole log segments older than this once they are archived and read."""
    kafka: KafkaSettings = KafkaSettings()

    @model_validator(mode="after")
    def _partition_exists(self) -> LogSettings:
        if self.kafka.partition >= self.kafka.partitions:
            raise ValueError(
                f"log.kafka.partition = {self.kafka.partition} needs log.kafka.partitions > "
                f"{self.kafka.partition} (partitions are numbered from 0)"
            )
        return self


class ServingSettings(_Section):
    """The PostgreSQL serving store for BI tools (docs/serving-postgres.md)."""

    postgres_dsn: SecretStr | None = None
    """e.g. postgresql://cartpulse@db.example.com:5432/shop; none: serving tables stay in DuckDB."""
    publish_interval_s: float = Field(default=1.0, ge=0.05, le=3_600)
    """`serve` copies changed serving-table rows to PostgreSQL this often."""

    @field_validator("postgres_dsn")
    @classmethod
    def _looks_like_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        dsn = value.get_secret_value().strip()
        if not (dsn.startswith(("postgresql://", "postgres://")) or "=" in dsn):
            raise ValueError(
                "must be a PostgreSQL URL or key=value string, e.g. "
                "postgresql://user@127.0.0.1:5432/shop or 'host=127.0.0.1 dbname=shop'"
            )
        return SecretStr(dsn)


class WarehouseSettings(_Section):
    """The batch warehouse: dbt models over the lake (`cartpulse models run`)."""

    exclude_bots: bool = True
    """Leave events of bot-flagged users (bot_alerts) out of every mart; counted either way."""
    interval_s: int = Field(default=3_600, ge=60, le=7 * 86_400)
    """`cartpulse serve` rebuilds the marts this often."""
    threads: int = Field(default=1, ge=1, le=64)
    """Models dbt builds at the same time (each DuckDB query already uses every core)."""
    memory_limit: str = Field(default="8GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|TB|MiB|GiB|TiB)$")
    """DuckDB memory while building (e.g. 8GB); larger steps spill to disk beyond it."""
    project_dir: Path | None = None
    """The dbt project; default: dbt/ of the source tree cartpulse runs from."""


class SparkSettings(_Section):
    """The Spark Structured Streaming runner (`cartpulse spark stream`, extra `spark`)."""

    master: str = "local[2]"
    """Spark master URL: local[N], local-cluster[W,C,MB], spark://host:7077, yarn, k8s://…"""
    checkpoint_dir: Path | None = None
    """Streaming checkpoints (offsets and state); default: <home>/state/spark."""
    kafka_bootstrap_servers: str | None = None
    """`kafka.bootstrap.servers` of the Kafka source (host:port,…); needed for --source kafka."""
    kafka_topic: str = "cartpulse-events"
    """Topic of raw events (NDJSON objects, keyed and partitioned by user_id)."""
    kafka_reader: Literal["python", "connector"] = "python"
    """Who reads the topic: confluent-kafka in Python workers, or Spark's JVM Kafka connector."""
    shuffle_partitions: int = Field(default=4, ge=1, le=100_000)
    """`spark.sql.shuffle.partitions`: state partitions of the sales and dedupe operators."""
    session_buckets: int = Field(default=16, ge=1, le=100_000)
    """Session state keys: sessions are hashed into this many buckets, one state row each."""
    trigger_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    """Micro-batch interval of a continuous run (Kafka, or a followed directory)."""
    max_files_per_trigger: int | None = Field(default=None, ge=1)
    """Files one micro-batch reads from a `files:DIR` source (None: all available)."""
    driver_memory: str = Field(default="2g", pattern=r"^\d+[kmgt]$")
    """`spark.driver.memory` (local mode runs the executors in the driver)."""
    warehouse_dir: Path | None = None
    """Tables of `cartpulse spark build` (dbt-spark); default: <home>/spark-warehouse."""
    dbt_threads: int = Field(default=4, ge=1, le=64)
    """Models and tests `cartpulse spark build` submits at once (Spark runs them side by side)."""


class ModelSettings(_Section):
    """Customer lifetime value, demand forecast and purchase propensity (`cartpulse models`)."""

    seed: int = Field(default=42, ge=0)
    """Random seed of every model fit: same lake and settings, same models and scores."""
    clv_horizon_months: int = Field(default=12, ge=1, le=120)
    """CLV counts the purchases expected in this many months (of 30 days)."""
    clv_monthly_discount: float = Field(default=0.01, ge=0.0, le=0.5)
    """Monthly discount rate of future revenue in CLV (0.01 = 1 % a month)."""
    forecast_horizons_days: tuple[int, ...] = (7, 14, 28)
    """Forecast horizons in days; `mart_product_forecast` has one row per product and horizon."""
    forecast_backtest_origins: int = Field(default=4, ge=1, le=52)
    """Rolling-origin backtest: forecast origins, one week apart, before the last full horizon."""
    forecast_interval: float = Field(default=0.8, gt=0.0, lt=1.0)
    """Coverage of the forecast prediction intervals (0.8 = 10th to 90th percentile)."""
    propensity_validation_share: float = Field(default=0.2, ge=0.05, le=0.5)
    """Newest share of carted items held out to measure the propensity model."""
    propensity_calibration_share: float = Field(default=0.2, ge=0.05, le=0.5)
    """Share of carted items, just before the validation slice, used to calibrate probabilities."""
    propensity_max_fit_rows: int = Field(default=1_000_000, ge=1_000)
    """The newest this-many items of the fit slice are used to fit the trees (bounds time)."""
    propensity_score_days: int = Field(default=7, ge=1, le=3_660)
    """`mart_purchase_propensity` aggregates the items carted in the last this-many days."""
    propensity_threads: int = Field(default=1, ge=1, le=256)
    """OpenMP threads of gradient boosting; 1 is fastest when other work shares the cores."""

    @field_validator("forecast_horizons_days")
    @classmethod
    def _sorted_positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(h < 1 or h > 366 for h in value):
            raise ValueError(
                "must be one or more horizons between 1 and 366 days, e.g. [7, 14, 28]"
            )
        return tuple(sorted(set(value)))


class BotSettings(_Section):
    """Bot detection rules, alert episodes and the alert webhook (docs/bots.md)."""

    enabled: bool = True
    """Run the bot detector in the stream engine; off: no new `bot_alerts` rows."""
    max_events_per_minute: int = Field(default=120, ge=1)
    """`events_per_minute`: a user with this many events (purchases aside) in one minute."""
    max_sessions_per_hour: int = Field(default=60, ge=1)
    """`sessions_per_hour`: a user starting this many sessions in one hour."""
    min_gaps: int = Field(default=30, ge=5)
    """`regular_pace` needs at least this many gaps between a user's events."""
    max_gap_cv: float = Field(default=0.3, gt=0, le=2)
    """`regular_pace`: coefficient of variation of the gaps at or below this (humans: > 1)."""
    max_gap_s: int = Field(default=7_200, ge=60)
    """Gaps longer than this (a user coming back later) are left out of the pace."""
    min_carts: int = Field(default=20, ge=1)
    """`carts_without_views` needs at least this many fast carts (and at least half fast)."""
    fast_cart_s: int = Field(default=5, ge=1)
    """A cart this soon after the user's previous event is a fast cart."""
    max_other_per_cart: float = Field(default=0.1, ge=0)
    """`carts_without_views`: views, removes and purchases at or below this share of the carts."""
    min_repeats: int = Field(default=20, ge=1)
    """`replayed_events` needs this many events repeating the previous one within 1 s."""
    max_repeat_share: float = Field(default=0.25, gt=0, le=1)
    """`replayed_events`: repeats at or above this share of the user's events."""
    min_hour_events: int = Field(default=600, ge=1)
    """`traffic_share` needs at least this many events from the user in one hour."""
    max_traffic_share: float = Field(default=0.05, gt=0, le=1)
    """`traffic_share`: the user's share of the hour's events at or above this."""
    min_robust_z: float = Field(default=10.0, gt=0)
    """`traffic_share`: (user's hour events − median) / (1.4826·MAD + 1) at or above this."""
    cooldown_s: int = Field(default=21_600, ge=60)
    """One alert per episode: a new one only after the rules were quiet this long."""
    state_ttl_s: int = Field(default=10_800, ge=600)
    """A user idle this long (and out of cool-down) is forgotten."""
    webhook_url: str | None = None
    """Alerts are POSTed here as JSON (none: alerts stay in `bot_alerts` only)."""
    webhook_secret: SecretStr | None = None
    """Signs each webhook body: header `X-Cartpulse-Signature: sha256=<hex HMAC>`."""
    webhook_max_attempts: int = Field(default=20, ge=1, le=1_000)
    """After this many failed attempts an alert is marked failed and left alone."""

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an http:// or https:// URL, e.g. https://ops.example.com/hook"
            )
        return value


class DashboardSettings(_Section):
    """The web dashboard of `serve`: its login (docs/dashboard.md)."""

    password_hash: SecretStr | None = None
    """Output of `cartpulse dashboard hash-password`; none: `state/dashboard.password` is used."""
    session_secret: SecretStr | None = None
    """Signs login cookies (≥ 32 random characters); none: kept in `state/dashboard.secret`."""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    """A login lasts this long; changing the password ends every login at once."""
    read_from: Literal["duckdb", "postgres"] = "duckdb"
    """Where the insight, emails and health pages read: the warehouse or the PostgreSQL store."""

    @field_validator("password_hash")
    @classmethod
    def _scrypt_hash(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("scrypt$"):
            raise ValueError(
                "must be a hash printed by `cartpulse dashboard hash-password` "
                "(it starts with scrypt$), never the password itself"
            )
        return value

    @field_validator("session_secret")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return _random_secret(value)


class Settings(BaseSettings):
    """Everything cartpulse can be configured with, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix="CARTPULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    home: Path = Path("cartpulse-home")
    """Home directory: lake, warehouse, event log (CARTPULSE_HOME)."""
    fsync: Literal["always", "batch", "never"] = "always"
    """When writes are forced to disk: `always` is crash-safe, `never` is for throwaway runs."""
    ingest: IngestSettings = IngestSettings()
    session: SessionSettings = SessionSettings()
    engine: EngineSettings = EngineSettings()
    smtp: SmtpSettings = SmtpSettings()
    retarget: RetargetSettings = RetargetSettings()
    collector: CollectorSettings = CollectorSettings()
    log: LogSettings = LogSettings()
    serving: ServingSettings = ServingSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    models: ModelSettings = ModelSettings()
    bots: BotSettings = BotSettings()
    dashboard: DashboardSettings = DashboardSettings()
    spark: SparkSettings = SparkSettings()

    @model_validator(mode="after")
    def _dashboard_store_exists(self) -> Settings:
        if self.dashboard.read_from == "postgres" and self.serving.postgres_dsn is None:
            raise ValueError(
                "dashboard.read_from = 'postgres' (CARTPULSE_DASHBOARD__READ_FROM) needs "
                "serving.postgres_dsn (CARTPULSE_SERVING__POSTGRES_DSN): set the DSN of the "
                "PostgreSQL serving store, or read from 'duckdb'"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order of precedence: explicit values, environment, then the TOML file."""
        toml_file = init_settings.init_kwargs.pop("_toml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def lake_dir(self) -> Path:
        """Root of the Parquet lake."""
        return self.home / "lake"

    @property
    def events_dir(self) -> Path:
        """Clean events, partitioned by event_date."""
        return self.lake_dir / "events"

    @property
    def quarantine_dir(self) -> Path:
        """Rejected rows, partitioned by ingest_date."""
        return self.lake_dir / "quarantine"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file holding serving tables and marts."""
        return self.home / "warehouse.duckdb"

    @property
    def models_dir(self) -> Path:
        """Trained model versions: models/<name>/<version>/."""
        return self.home / "models"

    @property
    def state_dir(self) -> Path:
        """Ingest manifest, dedupe state and staging area."""
        return self.home / "state"

    @property
    def spark_checkpoint_dir(self) -> Path:
        """Checkpoints of the Spark runner's streaming queries."""
        return self.spark.checkpoint_dir or self.state_dir / "spark"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from `config` (or ./cartpulse.toml if present) and CARTPULSE_* variables."""
    toml_file = config if config is not None else Path(DEFAULT_CONFIG_FILE)
    if config is not None and not config.is_file():
        raise SettingsError(f"config file {config} does not exist")
    has_toml = toml_file.is_file()
    if has_toml:
        _check_toml_syntax(toml_file)
    try:
        if has_toml:
            return Settings(_toml_file=toml_file, **overrides)  # type: ignore[call-arg]
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, toml_file if has_toml else None)) from None


def _check_toml_syntax(path: Path) -> None:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None


def _describe(exc: ValidationError, toml_file: Path | None) -> str:
    """Turn a pydantic error into lines naming each key, its value and what is allowed."""
    where = f" (from {toml_file} or CARTPULSE_* environment)" if toml_file else ""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        env = "CARTPULSE_" + "__".join(str(p) for p in err["loc"]).upper()
        if not err["loc"]:  # a rule across settings: its message names them
            lines.append(f"{err['msg'].removeprefix('Value error, ')}{where}")
            continue
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting `{key}`{where}; check the spelling")
            continue
        value = err.get("input")
        shown = "'***'" if any(w in key for w in ("secret", "password", "dsn")) else repr(value)
        lines.append(f"setting `{key}` (env {env}) = {shown} is invalid: {err['msg']}{where}")
    return "; ".join(lines)
