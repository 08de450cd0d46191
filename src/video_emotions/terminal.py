"""The commands' error stream, and how a command fails on a user's mistake (exit status 2)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from video_emotions.errors import VideoEmotionsError

console = Console(stderr=True)


def fail(exc: VideoEmotionsError) -> typer.Exit:
    """Print ``exc`` as an error and give the exit to raise: ``raise fail(exc) from exc``.

    The message is printed as it is, on one line however narrow the terminal (a path in it can be
    copied whole) and with no brackets taken for markup.
    """
    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
    return typer.Exit(code=2)
