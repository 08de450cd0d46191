"""``video-emotions eval``: accuracy and speed of the expression classifiers on a labelled face set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from video_emotions.config import get_settings
from video_emotions.domain import EMOTIONS
from video_emotions.errors import VideoEmotionsError
from video_emotions.evaluation.classifiers import TIMING_REPEATS, default_names, evaluate, load_classifier
from video_emotions.evaluation.faces import FaceSet, load_faces
from video_emotions.terminal import console, fail


def _summary_table(results: dict[str, dict], faces: FaceSet) -> Table:
    table = Table(title=f"{faces.name}: {len(faces)} faces (median ms per face on one thread)")
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")

    def row(label: str, cell) -> None:
        table.add_row(label, *(cell(result) for result in results.values()))

    row(
        "accuracy [95% CI]",
        lambda r: f"{r['accuracy']:.1%} [{r['accuracy_ci95'][0]:.1%}, {r['accuracy_ci95'][1]:.1%}]",
    )
    row("macro-F1", lambda r: f"{r['macro_f1']:.3f}")
    for emotion in EMOTIONS:
        row(f"recall {emotion}", lambda r, e=emotion: _optional(r["per_class_recall"][e]))
    for batch in TIMING_REPEATS:
        row(f"ms/face, batch {batch}", lambda r, b=batch: f"{r[f'ms_per_face_b{b}']:.3f}")
    return table


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _confusion_table(name: str, confusion: list[list[int]]) -> Table:
    table = Table(title=f"{name}: confusion (rows: true, columns: predicted)")
    table.add_column("")
    for emotion in EMOTIONS:
        table.add_column(emotion[:8], justify="right")
    for emotion, counts in zip(EMOTIONS, confusion, strict=True):
        table.add_row(emotion, *(str(count) for count in counts))
    return table


def eval_command(
    dataset: Annotated[
        Path, typer.Argument(help="An .npz face set (images, labels) or a folder of class folders.")
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="A classifier name or an .onnx file, '+flip' appended to average a mirrored view; "
            "repeat to compare several; default: every registered classifier, with and without +flip."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Accuracy, macro-F1, per-class recall, confusion matrix and speed of expression classifiers.

    With --json and one --model, the classifier's object (accuracy, accuracy_ci95, macro_f1,
    per_class_recall, per_class_f1, confusion, ms_per_face_b1, ms_per_face_b32, ...); otherwise
    {"dataset", "faces", "models": {name: that object}}. A classifier that cannot be loaded fails
    the command when named by --model, and is reported and left out otherwise.
    """
    settings = get_settings()
    try:
        faces = load_faces(dataset)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    if faces.skipped:
        console.print(f"skipped class folders not among our seven: {', '.join(faces.skipped)}")
    results: dict[str, dict] = {}
    for name in model or default_names():
        console.print(f"evaluating {name} on {len(faces)} faces ...")
        try:
            results[name] = evaluate(load_classifier(name, settings), faces)
        except VideoEmotionsError as exc:
            if model:
                raise fail(exc) from exc
            console.print(f"[yellow]{name} left out:[/yellow] {exc}")
    if not results:
        raise typer.Exit(code=2)
    if json_output:
        document = (
            results[model[0]]
            if model and len(model) == 1
            else {"dataset": faces.name, "faces": len(faces), "models": results}
        )
        typer.echo(json.dumps(document, indent=1))
        return
    out = Console()
    out.print(_summary_table(results, faces))
    for name, result in results.items():
        out.print(_confusion_table(name, result["confusion"]))
