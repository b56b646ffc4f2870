"""The Spark Structured Streaming shell around operators/ (scale-out, extra `spark`)."""
