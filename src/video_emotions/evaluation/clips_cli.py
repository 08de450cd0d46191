"""``video-emotions eval-clips``: the product's pipeline on a folder of labelled clips, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from video_emotions.config import Settings, get_settings
from video_emotions.domain import EMOTIONS
from video_emotions.errors import ModelUnavailableError, VideoEmotionsError
from video_emotions.evaluation.clips import FAILED, Clip, ClipOutcome, evaluate_clips, load_clips
from video_emotions.terminal import console, fail
from video_emotions.vision.classifier_registry import default_names
from video_emotions.vision.registry import ModelRegistry

_FIGURE_COLUMNS = (
    "clip accuracy [95% CI]",
    "macro-F1",
    "label shown",
    "face share",
    "frame accuracy [95% CI]",
    "ms/sample",
)


def _interval(value: float, ci: list[float]) -> str:
    return f"{value:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]"


def _groups(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {"overall": run["overall"]} | {f"dataset: {k}": v for k, v in run["by_dataset"].items()}
    if run["dataset_labels"] is not None:
        groups["labels dataset/dataset-page"] = run["dataset_labels"]
    return groups


def _title(run: dict[str, Any]) -> str:
    setting = run["settings"]
    return f"{run['folder']}: {run['overall']['clips']} clips, engine {run['engine']}, " + ", ".join(
        f"{key} {value}" for key, value in setting.items() if key != "detector_sha256"
    )


def _figure_cells(g: dict[str, Any]) -> list[str]:
    """One group's figures, in the order of :data:`_FIGURE_COLUMNS`."""
    return [
        _interval(g["accuracy"], g["accuracy_ci95"]),
        f"{g['macro_f1']:.3f}",
        f"{g['shown']} ({g['shown'] / g['clips']:.0%})",
        f"{g['face_share']:.1%}",
        _interval(g["frame_accuracy"], g["frame_accuracy_ci95"]),
        f"{g['ms_per_sample']:.1f}",
    ]


def _figures_table(run: dict[str, Any]) -> Table:
    table = Table(title=_title(run))
    table.add_column("")
    table.add_column("clips", justify="right")
    table.add_column("failed", justify="right")
    for column in _FIGURE_COLUMNS:
        table.add_column(column, justify="right")
    for name, g in _groups(run).items():
        table.add_row(name, str(g["clips"]), str(g["failed"]), *_figure_cells(g))
    return table


def _recall_table(run: dict[str, Any]) -> Table:
    table = Table(title="per-class recall (clips)")
    table.add_column("")
    for emotion in EMOTIONS:
        table.add_column(emotion[:8], justify="right")
    for name, g in _groups(run).items():
        recall = g["per_class_recall"]
        table.add_row(name, *("-" if recall[e] is None else f"{recall[e]:.2f}" for e in EMOTIONS))
    return table


def _confusion_table(figures: dict[str, Any], title: str) -> Table:
    table = Table(title=f"{title}: confusion (rows: true, columns: predicted)")
    table.add_column("")
    for name in figures["predicted_classes"]:
        table.add_column(name[:8], justify="right")
    for emotion, counts in zip(EMOTIONS, figures["confusion"], strict=True):
        table.add_row(emotion, *(str(count) for count in counts))
    return table


def _clips_table(run: dict[str, Any]) -> Table:
    table = Table(title="per clip")
    for column in ("clip", "dataset", "label", "predicted"):
        table.add_column(column)
    for column in ("label's %", "faces/samples", "frames right"):
        table.add_column(column, justify="right")
    for row in run["per_clip"]:
        table.add_row(
            row["path"],
            row["dataset"],
            row["label"],
            row["predicted"] if row["predicted"] == row["label"] else f"[red]{row['predicted']}[/red]",
            "" if row["mean"] is None else f"{row['mean'][row['label']]:.1f}",
            f"{row['samples_with_face']}/{row['samples']}",
            str(row["frames_correct"]),
        )
    return table


def _failed_table(run: dict[str, Any]) -> Table | None:
    """The clips that could not be analysed and why; None when every clip was."""
    failed = [row for row in run["per_clip"] if row["error"] is not None]
    if not failed:
        return None
    table = Table(title=f"failed clips ({len(failed)}, counted wrong)")
    for column in ("clip", "dataset", "label", "reason"):
        table.add_column(column)
    for row in failed:
        table.add_row(row["path"], row["dataset"], row["label"], escape(row["error"]))
    return table


def _comparison_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="classifiers in the default pipeline, all clips")
    table.add_column("classifier")
    for column in _FIGURE_COLUMNS:
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(str(run["settings"].get("classifier", run["engine"])), *_figure_cells(run["overall"]))
    return table


def _run(
    folder: Path, clips: list[Clip], settings: Settings, model: str | None, interval: float
) -> dict[str, Any]:
    registry = ModelRegistry(settings)
    engine = registry.load(model)
    identity = registry.identity(model)

    def progress(outcome: ClipOutcome) -> None:
        if outcome.error is not None:
            detail = f"[red]{FAILED}[/red]: {escape(str(outcome.error))}"
        else:
            detail = (
                f"{outcome.predicted} ({outcome.samples_with_face}/{outcome.samples} samples with a face)"
            )
        console.print(f"  {outcome.clip.name}: {outcome.clip.label} -> {detail}")

    return {
        "folder": str(folder),
        "engine": identity.engine,
        "model_file": identity.model_file,
        "model_sha256": identity.model_sha256,
        "settings": {"interval": interval, **identity.details},
        **evaluate_clips(
            clips, engine, interval=interval, aggregation=settings.aggregation, progress=progress
        ),
    }


def eval_clips_command(
    folder: Annotated[
        Path, typer.Argument(help="A folder with a labels.csv (path,label,dataset,...,label_quality).")
    ],
    model: Annotated[str | None, typer.Option(help="model_type to run (default: VE_DEFAULT_MODEL).")] = None,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between samples (default: VE_INTERVAL).", min=0.001)
    ] = None,
    all_classifiers: Annotated[
        bool,
        typer.Option(
            "--all-classifiers",
            help="Also run the default engine with every other registered classifier, single view and "
            "'+flip' (as VE_CLASSIFIER would); one whose file is not here is reported and left out.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Clip accuracy, macro-F1, per-class recall, confusion, face share, frame accuracy and ms per
    sample of the product's pipeline on labelled clips: overall, per dataset and for the clips with
    the datasets' own labels.

    Each clip is one segment [0, duration) sampled every --interval seconds; its prediction is the
    segment's dominant expression as the service reports it (VE_AGGREGATION), "none" without any face,
    "failed" (listed with the reason) when its file is missing or does not decode, in whole or in
    part. "label shown": clips whose label is the dominant expression or, not neutral, the most
    frequent expression but neutral among the samples with a face.

    With --json one object (folder, engine, settings, overall, by_dataset, dataset_labels, per_clip);
    with --all-classifiers {"runs": [such objects]}.
    """
    settings = get_settings()
    try:
        clips = load_clips(folder)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    every = [settings.classifier] + [name for name in default_names() if name != settings.classifier]
    runs = []
    for classifier in every if all_classifiers else [settings.classifier]:
        console.print(f"{len(clips)} clips, classifier {classifier} ...")
        try:
            runs.append(
                _run(
                    folder,
                    clips,
                    settings.model_copy(update={"classifier": classifier}),
                    model,
                    interval or settings.interval,
                )
            )
        except ModelUnavailableError as exc:
            console.print(f"[red]error:[/red] classifier {classifier}: {exc}")
            if classifier == settings.classifier:
                raise typer.Exit(code=2) from exc
        except VideoEmotionsError as exc:
            raise fail(exc) from exc
    if json_output:
        typer.echo(json.dumps({"runs": runs} if all_classifiers else runs[0], indent=1))
        return
    out = Console()
    for run in runs:
        out.print(_figures_table(run))
        out.print(_recall_table(run))
        out.print(_confusion_table(run["overall"], "all clips"))
        if run["dataset_labels"] is not None:
            out.print(_confusion_table(run["dataset_labels"], "labels dataset/dataset-page"))
        out.print(_clips_table(run))
        failed = _failed_table(run)
        if failed is not None:
            out.print(failed)
    if len(runs) > 1:
        out.print(_comparison_table(runs))
