"""The batch warehouse: the dbt project in dbt/ run over the lake into marts in warehouse.duckdb."""

from cartpulse.warehouse.runner import ModelsRun, NodeProgress, WarehouseError, run_models

__all__ = ["ModelsRun", "NodeProgress", "WarehouseError", "run_models"]
