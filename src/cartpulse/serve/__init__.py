"""`cartpulse serve`: collector, stream engine, email sender and web app in one process."""


class ServeError(Exception):
    """`serve` cannot start; the message says what to change."""
