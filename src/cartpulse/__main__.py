"""Allow `python -m cartpulse`."""

from cartpulse.cli import app

app(prog_name="cartpulse")
