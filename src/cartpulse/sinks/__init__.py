"""Where results are written: the Parquet lake and the serving store."""
