"""Help texts that read well at any terminal width.

Typer's "rich" markup keeps the line breaks of a docstring's paragraphs and then wraps them
again at the terminal's width, so a paragraph written at 100 columns comes out ragged at 80.
Each paragraph is joined into one line here (rich wraps it); list items (`- `, `* `, `1. `)
stay one per line, and indented paragraphs (examples) are kept as written.
"""

from __future__ import annotations

import inspect
import re

import typer

_ITEM = re.compile(r"^(?:[-*] |\d+\. )")
_LABEL = re.compile(r"(?<=[.!?]) [A-Z][^.!?:]{0,40}:$")


def reflow(text: str) -> str:
    """A help text with each paragraph (and each list item) on one line."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = [_paragraph(p) for p in paragraphs]
    # Typer dedents everything after the first paragraph by the margin of its lines but the
    # first: when those are all indented examples, they would lose their indentation. Keep the
    # second paragraph's own line breaks then, so it sets a margin of zero.
    rest = "\n\n".join(out[1:]).split("\n")[1:]
    if len(out) > 2 and all(line.startswith(" ") for line in rest if line.strip()):
        out[1] = paragraphs[1]
    return "\n\n".join(out)


def reflow_help(app: typer.Typer) -> None:
    """Reflow the help of every command and group of `app`, recursively."""
    for command in app.registered_commands:
        text = command.help or inspect.getdoc(command.callback)
        if text:
            command.help = reflow(text)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def _paragraph(text: str) -> str:
    lines = text.split("\n")
    if lines[0].startswith((" ", "\t", "\b")):
        return text  # an example or a block marked as verbatim
    out: list[str] = []
    for line in lines:
        if out and not _ITEM.match(line.strip()):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.strip())
    # a closing "Examples:" introduces the indented paragraphs after it: a line of its own
    label = _LABEL.search(out[-1])
    if label and label.start() > 0:
        out[-1:] = [out[-1][: label.start()].rstrip(), label.group().strip()]
    return "\n".join(out)
