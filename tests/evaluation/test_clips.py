"""``video-emotions eval-clips``: its JSON on a three-clip folder against a count made by hand, clips
that do not decode, and the figures of what the faces showed."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.media import face_video, faststart_copy
from video_emotions.analysis import analyse_video
from video_emotions.cli import app
from video_emotions.config import get_settings
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.evaluation.clips import Clip, ClipOutcome, group_figures
from video_emotions.evaluation.metrics import wilson_interval
from video_emotions.results import segment_summary
from video_emotions.video.sampler import Coverage, probe, sample_frames
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
    assert overall["predicted_classes"] == [*EMOTIONS, "none", "failed"]
    confusion = [[0] * 9 for _ in EMOTIONS]
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
    assert overall["failed"] == 0 and [row["error"] for row in report["per_clip"]] == [None] * 3
    # What the faces showed, sample by sample, as the product's summary says it.
    shares = [
        (row["neutral_share"], row["leading_expression"], row["leading_share"]) for row in report["per_clip"]
    ]
    expected = (summary["neutral_share"], summary["leading_expression"], summary["leading_share"])
    assert shares == [expected, expected, (None, None, None)]

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
    assert "no labels.csv" in failure(str(tmp_path / "nowhere"))


def test_eval_clips_goes_on_past_clips_that_fail(tmp_path: Path) -> None:
    face_video(tmp_path / "good.mp4", SECONDS)
    (tmp_path / "noise.mp4").write_bytes(random.Random(0).randbytes(50_000))
    whole = faststart_copy(face_video(tmp_path / "long.mp4", 6.0), tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: int(0.4 * len(whole))])
    # The cut copy opens and gives its first samples, then stops: it decodes only in part.
    coverage = Coverage()
    taken = list(sample_frames(cut, [Segment(1, 0.0, probe(cut).duration)], 1.0, coverage=coverage))
    assert taken and coverage.decoded_until is not None and coverage.decoded_until < probe(cut).duration - 1
    write_labels(
        tmp_path,
        [
            ("good.mp4", "happy", "set", "dataset"),
            ("noise.mp4", "sad", "set", "dataset"),
            ("cut.mp4", "angry", "set", "dataset"),
            ("gone.mp4", "fear", "set", "dataset"),
        ],
    )

    report = run_eval_clips(str(tmp_path), "--interval", "1.0")

    good, *bad = report["per_clip"]
    assert good["error"] is None and good["predicted"] in EMOTIONS and good["samples_with_face"] > 0
    assert [(row["path"], row["predicted"]) for row in bad] == [
        ("noise.mp4", "failed"),
        ("cut.mp4", "failed"),
        ("gone.mp4", "failed"),
    ]
    assert "does not decode" in bad[0]["error"] and "stops decoding" in bad[1]["error"]
    assert bad[2]["error"] == "missing"
    # The three count wrong (in the confusion's "failed" column); the good clip's figures stand.
    overall = report["overall"]
    correct = int(good["predicted"] == "happy")
    assert (overall["clips"], overall["failed"], overall["correct"]) == (4, 3, correct)
    assert overall["accuracy"] == pytest.approx(correct / 4)
    assert overall["accuracy_ci95"] == pytest.approx(list(wilson_interval(correct, 4)))
    assert [row[-1] for row in overall["confusion"]] == [1, 0, 1, 0, 1, 0, 0]  # angry, fear, sad
    assert overall["samples"] == good["samples"] and overall["face_share"] > 0
    assert overall["ms_per_sample"] > 0

    done = CliRunner().invoke(app, ["eval-clips", str(tmp_path), "--interval", "1.0"], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    assert "clip accuracy [95% CI]" in done.stdout and "label shown" in done.stdout
    assert "failed clips (3, counted wrong)" in done.stdout
    assert "stops decoding" in done.stdout and "missing" in done.stdout


def outcome(
    label: str,
    predicted: str,
    leading: str | None = None,
    share: float | None = None,
    error: str | None = None,
) -> ClipOutcome:
    clip = Clip(f"{label}.mp4", Path(f"{label}.mp4"), label, "set", "dataset")
    with_face = 0 if predicted in ("none", "failed") else 10
    return ClipOutcome(
        clip,
        predicted,
        10,
        with_face,
        0,
        1.0,
        None,
        leading_expression=leading,
        leading_share=share,
        error=error,
    )


def test_label_shown_and_neutral_false_leads() -> None:
    figures = group_figures(
        [
            outcome("happy", "happy"),  # shown: dominant
            outcome("happy", "neutral", "happy", 0.3),  # shown: leading
            outcome("sad", "neutral", "happy", 0.4),  # not shown: another lead
            outcome("neutral", "neutral", "happy", 0.25),  # shown; a false lead (at the threshold)
            outcome(
                "neutral", "happy", "happy", 0.6
            ),  # not shown (a neutral label needs dominant); false lead
            outcome("neutral", "neutral", "sad", 0.2),  # shown; lead too small to be false
            outcome("neutral", "none"),  # no face: not shown
            outcome("angry", "failed", error="missing"),  # not shown
        ]
    )
    assert (figures["clips"], figures["correct"], figures["failed"]) == (8, 3, 1)
    assert figures["shown"] == 4 and figures["neutral_false_lead"] == 2
