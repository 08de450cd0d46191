"""The commands' error stream, and how a command fails on a user's mistake (exit status 2)."""

from __future__ import annotations

import typer
from rich.console import Console

from video_emotions.errors import VideoEmotionsError

console = Console(stderr=True)


def fail(exc: VideoEmotionsError) -> typer.Exit:
    """Print ``exc`` as an error and give the exit to raise: ``raise fail(exc) from exc``."""
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)
