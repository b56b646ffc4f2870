"""Settings: TOML file, CARTPULSE_* environment, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartpulse.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("CARTPULSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_without_any_file() -> None:
    s = load_settings()
    assert s.home == Path("cartpulse-home")
    assert s.session.timeout_s == 1800
    assert s.events_dir == Path("cartpulse-home/lake/events")


def test_toml_in_working_dir_is_read(tmp_path: Path) -> None:
    (tmp_path / "cartpulse.toml").write_text('home = "/data/shop"\n[smtp]\nhost = "mail.local"\n')
    s = load_settings()
    assert s.home == Path("/data/shop")
    assert s.smtp.host == "mail.local"


def test_env_overrides_toml_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text("[smtp]\nport = 2525\n")
    monkeypatch.setenv("CARTPULSE_SMTP__PORT", "1025")
    monkeypatch.setenv("CARTPULSE_HOME", str(tmp_path / "h"))
    s = load_settings(cfg)
    assert s.smtp.port == 1025
    assert s.home == tmp_path / "h"


def test_write_keys_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_COLLECTOR__WRITE_KEYS", "key1, key2")
    assert load_settings().collector.write_keys == ("key1", "key2")


def test_bad_value_names_key_value_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_SMTP__PORT", "99999")
    with pytest.raises(SettingsError) as err:
        load_settings()
    msg = str(err.value)
    assert "smtp.port" in msg and "CARTPULSE_SMTP__PORT" in msg and "99999" in msg
    assert "less than or equal to 65535" in msg


def test_bad_choice_lists_allowed_values(tmp_path: Path) -> None:
    (tmp_path / "cartpulse.toml").write_text('[smtp]\nsecurity = "tls"\n')
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "smtp.security" in str(err.value) and "'starttls'" in str(err.value)


def test_unknown_key_in_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cartpulse.toml").write_text('[smtp]\nhots = "x"\n')
    with pytest.raises(SettingsError, match=r"unknown setting `smtp\.hots`"):
        load_settings()


def test_missing_config_file_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("home = \n")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(bad)


def test_dedupe_window_cannot_be_below_one_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_INGEST__DEDUPE_WINDOW_S", "60")
    with pytest.raises(SettingsError, match=r"ingest\.dedupe_window_s"):
        load_settings()


def test_secret_key_refuses_placeholders_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARTPULSE_RETARGET__SECRET_KEY", "changethis")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "retarget.secret_key" in str(err.value) and "changethis" not in str(err.value)
    assert "at least 32 characters" in str(err.value)
    monkeypatch.setenv("CARTPULSE_RETARGET__SECRET_KEY", "x" * 40)
    with pytest.raises(SettingsError):
        load_settings()
    good = "k3J9-vQ2xLp8Zr4TmW7yNc1bHd6FgS0aE5uO"
    monkeypatch.setenv("CARTPULSE_RETARGET__SECRET_KEY", good)
    key = load_settings().retarget.secret_key
    assert key is not None and key.get_secret_value() == good


def test_bot_settings_from_env_and_a_bad_webhook_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPULSE_BOTS__MAX_GAP_CV", "0.2")
    monkeypatch.setenv("CARTPULSE_BOTS__WEBHOOK_URL", "https://ops.example.com/hook")
    bots = load_settings().bots
    assert bots.max_gap_cv == 0.2 and bots.webhook_url == "https://ops.example.com/hook"
    monkeypatch.setenv("CARTPULSE_BOTS__WEBHOOK_URL", "ops.example.com/hook")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "bots.webhook_url" in str(err.value) and "http://" in str(err.value)


def test_defaults_keep_everything_embedded() -> None:
    s = load_settings()
    assert s.log.backend == "embedded" and s.serving.postgres_dsn is None
    assert s.log.kafka.topic == "cartpulse-events" and s.log.kafka.partition == 0


def test_kafka_and_postgres_from_toml_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cartpulse.toml").write_text(
        '[log]\nbackend = "kafka"\n[log.kafka]\nbootstrap_servers = "k1:9092,k2:9092"\n'
        'partitions = 4\npartition = 3\n[log.kafka.client]\n"security.protocol" = "SASL_SSL"\n'
    )
    monkeypatch.setenv("CARTPULSE_SERVING__POSTGRES_DSN", "host=db dbname=shop password=pw")
    s = load_settings()
    assert s.log.backend == "kafka" and s.log.kafka.partition == 3
    assert s.log.kafka.client == {"security.protocol": "SASL_SSL"}
    assert s.serving.postgres_dsn is not None
    assert s.serving.postgres_dsn.get_secret_value() == "host=db dbname=shop password=pw"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CARTPULSE_LOG__BACKEND": "redis"}, ["log.backend", "'embedded' or 'kafka'"]),
        ({"CARTPULSE_LOG__KAFKA__PARTITION": "2"}, ["log.kafka.partition = 2", "partitions > 2"]),
        ({"CARTPULSE_LOG__KAFKA__TOPIC": "bad topic"}, ["log.kafka.topic"]),
        ({"CARTPULSE_SERVING__POSTGRES_DSN": "db.example.com"}, ["serving.postgres_dsn", "'***'"]),
        ({"CARTPULSE_SERVING__PUBLISH_INTERVAL_S": "0"}, ["serving.publish_interval_s"]),
    ],
)
def test_wrong_values_name_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: list[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    for word in words:
        assert word in str(err.value)
    assert "db.example.com" not in str(err.value)


def test_dashboard_reading_postgres_needs_the_postgres_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().dashboard.read_from == "duckdb"
    monkeypatch.setenv("CARTPULSE_DASHBOARD__READ_FROM", "postgres")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "dashboard.read_from" in message and "serving.postgres_dsn" in message
    assert "CARTPULSE_SERVING__POSTGRES_DSN" in message and "secret" not in message
    monkeypatch.setenv("CARTPULSE_SERVING__POSTGRES_DSN", "postgresql://bi:pw@127.0.0.1/shop")
    assert load_settings().dashboard.read_from == "postgres"
    monkeypatch.setenv("CARTPULSE_DASHBOARD__READ_FROM", "mysql")
    with pytest.raises(SettingsError, match=r"dashboard\.read_from"):
        load_settings()
