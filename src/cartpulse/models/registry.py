"""Model versions: files under HOME/models/<name>/<version>/ and the `model_versions` table.

A version folder holds `params.json` (what was fitted, and the settings and seed it was fitted
with), `metrics.json` (how well it did) and, for models that are more than parameters,
`model.pkl`. Folders are written under a temporary name and renamed, so a crash never leaves a
half-written version behind. Pickles are only ever read from the user's own home directory.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

TABLE_MODEL_VERSIONS = "model_versions"

VERSIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE_MODEL_VERSIONS} (
  name VARCHAR NOT NULL,
  version VARCHAR NOT NULL,
  trained_at TIMESTAMPTZ NOT NULL,
  path VARCHAR NOT NULL,
  params JSON NOT NULL,
  metrics JSON NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE OR REPLACE VIEW {TABLE_MODEL_VERSIONS}_latest AS
  SELECT * FROM {TABLE_MODEL_VERSIONS}
  QUALIFY row_number() OVER (PARTITION BY name ORDER BY version DESC) = 1;
"""


class ModelNotTrainedError(ValueError):
    """No version of a model exists yet; the message says how to train one."""


@dataclass(frozen=True)
class ModelVersion:
    """One trained version of a model: where it lives, its parameters and metrics."""

    name: str
    version: str
    path: Path
    trained_at: datetime
    params: dict[str, Any]
    metrics: dict[str, Any]

    def load_artifact(self) -> Any:
        """The pickled model object of this version."""
        with (self.path / "model.pkl").open("rb") as fh:
            return pickle.load(fh)  # written by `models train` into this home only


def _versions(models_dir: Path, name: str) -> list[str]:
    folder = models_dir / name
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("v"))


def save_version(
    models_dir: Path,
    name: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    artifact: object | None = None,
) -> ModelVersion:
    """Write the next version of model `name` (v0001, v0002, ...) and return it."""
    existing = _versions(models_dir, name)
    number = int(existing[-1][1:]) + 1 if existing else 1
    version = f"v{number:04d}"
    final = models_dir / name / version
    staging = models_dir / name / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    trained_at = datetime.now(UTC)
    meta = {"name": name, "version": version, "trained_at": trained_at.isoformat()}
    (staging / "params.json").write_text(json.dumps({**meta, **params}, indent=2, default=str))
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    if artifact is not None:
        with (staging / "model.pkl").open("wb") as fh:
            pickle.dump(artifact, fh, protocol=pickle.HIGHEST_PROTOCOL)
    staging.rename(final)
    return ModelVersion(name, version, final, trained_at, params, metrics)


def latest_version(models_dir: Path, name: str) -> ModelVersion:
    """The newest version of model `name`, or ModelNotTrainedError."""
    versions = _versions(models_dir, name)
    if not versions:
        raise ModelNotTrainedError(
            f"model {name} has no trained version in {models_dir}: run `cartpulse models train`"
        )
    path = models_dir / name / versions[-1]
    params = json.loads((path / "params.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    trained_at = datetime.fromisoformat(params.pop("trained_at"))
    params.pop("name", None)
    params.pop("version", None)
    return ModelVersion(name, versions[-1], path, trained_at, params, metrics)


def record_version(con: duckdb.DuckDBPyConnection, version: ModelVersion) -> None:
    """Add a version to `model_versions` (and the view `model_versions_latest`)."""
    con.execute(VERSIONS_DDL)
    con.execute(
        f"INSERT OR REPLACE INTO {TABLE_MODEL_VERSIONS} VALUES (?, ?, ?, ?, ?, ?)",
        [
            version.name,
            version.version,
            version.trained_at,
            str(version.path),
            json.dumps(version.params, default=str),
            json.dumps(version.metrics, default=str),
        ],
    )
