"""deploy/compose.yaml: untested with a container engine, so at least its shape and settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from cartpulse.settings import Settings
from tests.conftest import REPO

COMPOSE = REPO / "deploy" / "compose.yaml"


def services() -> dict[str, dict[str, object]]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data["services"]  # type: ignore[no-any-return]


def test_compose_has_kafka_spark_postgres_and_cartpulse() -> None:
    names = set(services())
    assert {"kafka", "postgres", "spark-master", "spark-worker", "spark-job", "cartpulse"} <= names
    kafka_env = services()["kafka"]["environment"]
    assert isinstance(kafka_env, dict) and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]


@pytest.mark.parametrize("service", ["spark-job", "cartpulse"])
def test_cartpulse_environment_is_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = services()[service]["environment"]
    assert isinstance(env, dict)
    for key, value in env.items():
        if key.startswith("CARTPULSE_"):
            monkeypatch.setenv(key, str(value))
    settings = Settings()  # extra keys are forbidden: a misspelt variable fails here
    assert settings.spark.kafka_bootstrap_servers == "kafka:9092"
    assert settings.spark.master.startswith("spark://")


def test_spark_job_runs_the_kafka_source() -> None:
    command = services()["spark-job"]["command"]
    assert command == ["cartpulse", "spark", "stream", "--source", "kafka"]
