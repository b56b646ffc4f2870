"""The HTTP collector's write path: intake, duplicate-detection checkpoint and rate limits."""
