"""Help texts reflowed for the terminal: paragraphs and list items on one line, examples kept."""

from __future__ import annotations

from cartpulse.cli_help import reflow


def test_paragraphs_and_list_items_become_one_line_each() -> None:
    text = """Summary line.

    A paragraph written
    over three lines
    at some width.

    - first item that goes
      on over two lines
    - second item
    """
    assert reflow(text) == (
        "Summary line.\n\n"
        "A paragraph written over three lines at some width.\n\n"
        "- first item that goes on over two lines\n- second item"
    )


def test_examples_keep_their_indentation_and_their_label_its_own_line() -> None:
    text = """Summary.

    What it does, over
    two lines. Examples:

      cartpulse replay a.csv

      cartpulse replay b.csv --speed 1000
    """
    assert reflow(text) == (
        "Summary.\n\n"
        "What it does, over two lines.\nExamples:\n\n"
        "  cartpulse replay a.csv\n\n"
        "  cartpulse replay b.csv --speed 1000"
    )


def test_a_second_paragraph_before_only_examples_keeps_its_breaks() -> None:
    # Typer dedents the text after the first paragraph by the margin of its lines but the
    # first: a one-line second paragraph followed only by examples would flatten them.
    text = """Summary.

    Runs the thing
    on every file

      cartpulse thing x
    """
    out = reflow(text)
    assert out.endswith("Runs the thing\non every file\n\n  cartpulse thing x")
