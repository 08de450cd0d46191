"""``video-emotions eval-clips``: its JSON on a three-clip folder against a count made by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.media import face_video
from video_emotions.analysis import analyse_video
from video_emotions.cli import app
from video_emotions.config import get_settings
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.evaluation.metrics import wilson_interval
from video_emotions.results import segment_summary
from video_emotions.video.sampler import probe
from video_emotions.vision.registry import ModelRegistry

SECONDS = 2.0


def write_labels(folder: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with (folder / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "dataset", "source_repo", "label_quality"])
        writer.writerows((path, label, dataset, "", quality) for path, label, dataset, quality in rows)


def failure(*args: str) -> str:
    """The error message of an eval-clips run that must fail, its line breaks undone."""
    done = CliRunner().invoke(app, ["eval-clips", *args])
    assert done.exit_code == 2, done.output
    return " ".join(done.output.split())


def run_eval_clips(*args: str) -> dict:
    done = CliRunner().invoke(app, ["eval-clips", *args, "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_eval_clips_json_matches_a_count_by_hand(tmp_path: Path) -> None:
    face_video(tmp_path / "face_a.mp4", SECONDS)
    face_video(tmp_path / "face_b.mp4", SECONDS)
    face_video(tmp_path / "blank.mp4", SECONDS, blank_from=0.0)

    # What the pipeline answers for the astronaut, sample by sample and for the whole clip.
    settings = get_settings()
    engine = ModelRegistry(settings).load(None)
    clip = tmp_path / "face_a.mp4"
    (result,) = analyse_video(clip, [Segment(1, 0.0, probe(clip).duration)], engine, interval=1.0)
    summary = segment_summary(result, settings.aggregation)
    answer = summary["dominant"]
    frame_answers = [max(f.estimate.probabilities, key=f.estimate.probabilities.get) for f in result.frames]
    samples = len(result.frames)
    assert answer in EMOTIONS and samples >= 2

    # Clip a is labelled with that answer (right), b with another emotion (wrong), the blank clip
    # with a third one (wrong: "none"). Labels as a dataset may spell them: case and synonyms.
    wrong = next(e for e in EMOTIONS if e != answer)
    third = next(e for e in EMOTIONS if e not in (answer, wrong))
    write_labels(
        tmp_path,
        [
            ("face_a.mp4", answer.upper(), "set one", "dataset"),
            (
                "face_b.mp4",
                {"angry": "anger", "disgust": "disgusted"}.get(wrong, wrong),
                "set one",
                "dataset-page",
            ),
            ("blank.mp4", third, "set two", "visual"),
        ],
    )

    report = run_eval_clips(str(tmp_path), "--interval", "1.0")

    assert [(row["path"], row["label"], row["predicted"]) for row in report["per_clip"]] == [
        ("face_a.mp4", answer, answer),
        ("face_b.mp4", wrong, answer),
        ("blank.mp4", third, "none"),
    ]
    # Each clip's combined percentages, as the product's summary gives them; none without a face.
    assert [row["mean"] for row in report["per_clip"]] == [summary["mean"], summary["mean"], None]
    overall = report["overall"]
    assert overall["clips"] == 3 and overall["correct"] == 1
    assert overall["accuracy"] == pytest.approx(1 / 3)
    assert overall["accuracy_ci95"] == pytest.approx(list(wilson_interval(1, 3)))
    # F1: the answer's 2*1/(1 true + 2 predicted), 0 for the two others; "none" is left out.
    assert overall["macro_f1"] == pytest.approx((2 / 3 + 0 + 0) / 3)
    expected_recall = {e: None for e in EMOTIONS} | {answer: 1.0, wrong: 0.0, third: 0.0}
    assert overall["per_class_recall"] == expected_recall
    assert overall["predicted_classes"] == [*EMOTIONS, "none"]
    confusion = [[0] * 8 for _ in EMOTIONS]
    confusion[EMOTIONS.index(answer)][EMOTIONS.index(answer)] = 1
    confusion[EMOTIONS.index(wrong)][EMOTIONS.index(answer)] = 1
    confusion[EMOTIONS.index(third)][7] = 1
    assert overall["confusion"] == confusion
    # Every clip has as many samples as the reference run; the blank one shows no face.
    assert overall["samples"] == 3 * samples and overall["samples_with_face"] == 2 * samples
    assert overall["face_share"] == pytest.approx(2 / 3)
    right_frames = frame_answers.count(answer) + frame_answers.count(wrong)
    assert overall["frames_correct"] == right_frames
    assert overall["frame_accuracy"] == pytest.approx(right_frames / (2 * samples))
    assert overall["frame_accuracy_ci95"] == pytest.approx(list(wilson_interval(right_frames, 2 * samples)))
    assert overall["ms_per_sample"] > 0

    one, two = report["by_dataset"]["set one"], report["by_dataset"]["set two"]
    assert (one["clips"], one["correct"], one["face_share"]) == (2, 1, 1.0)
    assert (two["clips"], two["correct"], two["face_share"]) == (1, 0, 0.0)
    assert two["frame_accuracy"] == 0.0 and two["frame_accuracy_ci95"] == [0.0, 1.0]
    # The datasets' own labels (dataset, dataset-page): the two face clips.
    assert report["dataset_labels"]["clips"] == 2 and report["dataset_labels"]["accuracy"] == 0.5
    assert report["settings"]["interval"] == 1.0 and report["engine"] == "default"


def test_eval_clips_table_and_bad_folders(tmp_path: Path) -> None:
    face_video(tmp_path / "a.mp4", 1.0)
    write_labels(tmp_path, [("a.mp4", "happiness", "set", "dataset")])
    done = CliRunner().invoke(app, ["eval-clips", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "per-class recall" in done.stdout and "confusion" in done.stdout

    write_labels(tmp_path, [("a.mp4", "contempt", "set", "dataset")])
    assert "'contempt'" in failure(str(tmp_path))
    write_labels(tmp_path, [("missing.mp4", "sad", "set", "dataset")])
    assert "missing.mp4 is missing" in failure(str(tmp_path))
    assert "no labels.csv" in failure(str(tmp_path / "nowhere"))
