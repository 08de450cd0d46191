"""``video-emotions eval``: accuracy, calibration and speed of the expression classifiers on labelled
face sets, the sets side by side."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from video_emotions.config import get_settings
from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError, VideoEmotionsError
from video_emotions.evaluation.classifiers import TIMING_REPEATS, evaluate, speed
from video_emotions.evaluation.faces import FaceSet, load_faces
from video_emotions.terminal import console, fail
from video_emotions.vision.classifier_registry import default_names, load_classifier

#: ``results[dataset][classifier]``: the figures :func:`evaluate` gives.
Results = dict[str, dict[str, dict[str, Any]]]


def _set_title(faces: FaceSet) -> str:
    left_out = f", {faces.left_out} left out" if faces.votes is not None else ""
    return f"{faces.name}: {len(faces)} faces{left_out}"


def _optional(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _summary_table(results: Results, sets: list[FaceSet], classifiers: list[str]) -> Table:
    """One column per classifier and set; ms per face is timed once per classifier."""
    table = Table(title="; ".join(map(_set_title, sets)) + " (median ms per face on one thread)")
    table.add_column("")
    columns = [(name, faces.name) for name in classifiers for faces in sets]
    for name, dataset in columns:
        table.add_column(f"{name}\n{dataset}" if len(sets) > 1 else name, justify="right")

    def row(label: str, cell: Callable[[dict[str, Any]], str], *, end_section: bool = False) -> None:
        cells = (cell(results[dataset][name]) for name, dataset in columns)
        table.add_row(label, *cells, end_section=end_section)

    row(
        "accuracy [95% CI]",
        lambda r: f"{r['accuracy']:.1%} [{r['accuracy_ci95'][0]:.1%}, {r['accuracy_ci95'][1]:.1%}]",
    )
    row("macro-F1", lambda r: f"{r['macro_f1']:.3f}")
    row("ECE", lambda r: f"{r['ece']:.3f}")
    row("vote cross-entropy", lambda r: _optional(r["vote_cross_entropy"], ".3f"))
    row("p(majority label)", lambda r: _optional(r["majority_probability"]), end_section=True)
    for figure, key in (("precision", "per_class_precision"), ("recall", "per_class_recall")):
        for emotion in EMOTIONS:
            last = emotion == EMOTIONS[-1]
            row(f"{figure} {emotion}", lambda r, e=emotion, k=key: _optional(r[k][e]), end_section=last)
    for emotion in EMOTIONS:
        last = emotion == EMOTIONS[-1]
        row(f"ECE {emotion}", lambda r, e=emotion: f"{r['per_class_ece'][e]:.3f}", end_section=last)
    for batch in TIMING_REPEATS:
        row(f"ms/face, batch {batch}", lambda r, b=batch: f"{r[f'ms_per_face_b{b}']:.3f}")
    return table


def _confusion_table(name: str, dataset: str, confusion: list[list[int]]) -> Table:
    table = Table(title=f"{name} on {dataset}: confusion (rows: true, columns: predicted)")
    table.add_column("")
    for emotion in EMOTIONS:
        table.add_column(emotion[:8], justify="right")
    for emotion, counts in zip(EMOTIONS, confusion, strict=True):
        table.add_row(emotion, *(str(count) for count in counts))
    return table


def _load_sets(paths: list[Path]) -> list[FaceSet]:
    """The face sets, named by file name, or by the path as given where two file names are alike."""
    sets = [load_faces(path) for path in paths]
    if len({faces.name for faces in sets}) < len(sets):
        sets = [dataclasses.replace(faces, name=str(path)) for faces, path in zip(sets, paths, strict=True)]
    if len({faces.name for faces in sets}) < len(sets):
        raise InputError(f"a face set is given twice: {', '.join(map(str, paths))}")
    return sets


def eval_command(
    datasets: Annotated[
        list[Path],
        typer.Argument(
            help="One or more face sets: an .npz (images, labels), an .npz with FER+ votes (images, "
            "votes, vote_classes; majority labels), or a folder of class folders.",
            metavar="DATASET",
            show_default=False,
        ),
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
    """Accuracy, macro-F1, calibration (ECE), fit to FER+ votes, per-class precision, recall and
    calibration, confusion matrix and speed of expression classifiers, on one or more face sets.

    A FER+ votes set is scored on the majority protocol: faces whose top vote is contempt,
    unknown, not a face, or tied are left out (their number is printed).

    With --json, one set and one --model: the classifier's object (accuracy, accuracy_ci95,
    macro_f1, per_class_precision, per_class_recall, per_class_f1, confusion, ece, per_class_ece,
    vote_cross_entropy, majority_probability, ms_per_face_b1, ms_per_face_b32, ...); one set:
    {"dataset", "faces", "left_out", "models": {name: that object}}; several sets: {"datasets":
    {set: {"faces", "left_out", "models"}}}. A classifier that cannot be loaded fails the command
    when named by --model, and is reported and left out otherwise.
    """
    settings = get_settings()
    try:
        sets = _load_sets(datasets)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    for faces in sets:
        if faces.skipped:
            console.print(
                f"{faces.name}: skipped class folders not among our seven: {', '.join(faces.skipped)}"
            )
        if faces.votes is not None:
            console.print(
                f"{faces.name}: {faces.left_out} faces left out (top vote contempt, unknown, "
                "not a face, or tied)"
            )
    results: Results = {faces.name: {} for faces in sets}
    classifiers = []
    for name in model or default_names():
        try:
            classifier = load_classifier(name, settings)
        except VideoEmotionsError as exc:
            if model:
                raise fail(exc) from exc
            console.print(f"[yellow]{name} left out:[/yellow] {exc}")
            continue
        classifiers.append(name)
        timing = speed(classifier, sets[0].images)
        for faces in sets:
            console.print(f"evaluating {name} on {faces.name}, {len(faces)} faces ...")
            results[faces.name][name] = evaluate(classifier, faces, timing)
    if not classifiers:
        raise typer.Exit(code=2)
    if json_output:
        typer.echo(json.dumps(_document(results, sets, model), indent=1))
        return
    out = Console()
    out.print(_summary_table(results, sets, classifiers))
    for name in classifiers:
        for faces in sets:
            out.print(_confusion_table(name, faces.name, results[faces.name][name]["confusion"]))


def _document(results: Results, sets: list[FaceSet], model: list[str] | None) -> dict[str, Any]:
    """The --json object (see :func:`eval_command`)."""
    if len(sets) > 1:
        return {
            "datasets": {
                faces.name: {"faces": len(faces), "left_out": faces.left_out, "models": results[faces.name]}
                for faces in sets
            }
        }
    (faces,) = sets
    if model and len(model) == 1:
        return results[faces.name][model[0]]
    return {
        "dataset": faces.name,
        "faces": len(faces),
        "left_out": faces.left_out,
        "models": results[faces.name],
    }
