"""cartpulse: clickstream to recovered sales and live insight."""

__version__ = "0.1.0"
