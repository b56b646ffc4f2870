"""The `cartpulse` command (also `python -m cartpulse`)."""

from cartpulse.memory import keep_freed_memory


def main() -> None:
    """Run the command line."""
    # before pyarrow loads: its allocator reads its settings once
    keep_freed_memory()
    from cartpulse.cli import app

    app(prog_name="cartpulse")


if __name__ == "__main__":
    main()
