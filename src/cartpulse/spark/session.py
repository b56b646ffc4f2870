"""Starting a SparkSession for cartpulse: pyspark from the `spark` extra, Java found, UTC."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cartpulse.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkUnavailableError(Exception):
    """pyspark or Java is missing."""


def require_pyspark() -> None:
    """Fail with the extra to install when pyspark (or pandas) cannot be imported."""
    missing = [m for m in ("pyspark", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        raise SparkUnavailableError(
            f"the Spark runner needs the `spark` extra (missing {', '.join(missing)}): "
            "pip install 'cartpulse[spark]'"
        )


def java_home() -> Path:
    """JAVA_HOME, or the JDK of the `java` on PATH (Spark needs Java 17 or 21)."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise SparkUnavailableError(
            "the Spark runner needs Java 17+: set JAVA_HOME or put java on PATH"
        )
    return Path(java).resolve().parent.parent


def spark_home() -> Path:
    """The pip package's Spark distribution (jars and bin scripts)."""
    import pyspark

    return Path(pyspark.__file__).parent


def build_session(
    cfg: SparkSettings,
    app_name: str = "cartpulse",
    warehouse_dir: Path | None = None,
    metastore_dir: Path | None = None,
) -> SparkSession:
    """A SparkSession for the given master, with UTC time and Parquet timestamps in µs.

    With `metastore_dir`, tables are kept in a Hive catalog stored there (embedded Derby), so
    that a later session finds the tables an earlier one made.
    """
    require_pyspark()
    os.environ["JAVA_HOME"] = str(java_home())
    # local-cluster masters start executors through SPARK_HOME's scripts.
    os.environ.setdefault("SPARK_HOME", str(spark_home()))
    # Python workers must import cartpulse: run them on this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "true")
    )
    if warehouse_dir is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(warehouse_dir))
    if metastore_dir is not None:
        url = f"jdbc:derby:;databaseName={metastore_dir.resolve()};create=true"
        builder = (
            builder.enableHiveSupport()
            .config("spark.hadoop.javax.jdo.option.ConnectionURL", url)
            # derby.log goes beside the database, not into the working directory
            .config(
                "spark.driver.extraJavaOptions",
                f"-Dderby.system.home={metastore_dir.resolve().parent}",
            )
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
