"""Train an expression classifier on FER2013, export it as ONNX and write its model card.

    .venv-heavy/bin/python training/train.py --out training/runs/NAME [--net NAME] [--epochs N]
        [--teacher RUN_DIR_OR_MODEL ...] [--resume]

The recipe is the one of shared/models.md (measured on a GPU), on whatever device there is:
per-batch augmentation (flip, ±15° rotation, zoom, shift, brightness and contrast, random
erasing, mixup or cutmix on 30% of the batches), label smoothing 0.1, SGD with Nesterov momentum
0.9 and weight decay 5e-4 (not on biases and batch-norm scales), linear warm-up then cosine
decay, batches of 256. Seeds are fixed: the model's initialisation by ``--seed``, each epoch's
order and augmentation by ``--seed`` and the epoch, so a resumed run draws what an unbroken one
would. A checkpoint is written after every epoch; ``--resume`` goes on from it.

``--net`` picks the network (``training/net.py``: the CPU-sized ``student``, or the ``resnet18``
and ``vgg`` teachers). Each ``--teacher`` (a finished run's folder, a registered classifier name
such as ``mini-xception``, or an ``.onnx`` file) adds knowledge distillation: the loss becomes
``(1 - w) * cross-entropy + w * T² * KL(teachers' mean softened probabilities || student's)``
with temperature ``T`` (``--temperature``) and weight ``w`` (``--distill-weight``), the teachers
seeing the very augmented batch the student sees.

On a GPU the whole training set lives on the device as uint8, augmentation runs there, and the
forward pass runs in bfloat16 with channels-last tensors; on the CPU everything stays float32.

The model is the last epoch's (no selection on the test split, which is only reported). The
ONNX file takes ``(N, 1, 48, 48)`` float32 faces normalised as ``(x / 255 - 0.5) * 2`` and gives
softmax probabilities in EMOTIONS order; its figures in the card come from
``video_emotions.evaluation``, as ``video-emotions eval`` computes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from augment import augment
from net import NETS, build_net
from torch import nn

from video_emotions.domain import EMOTIONS
from video_emotions.evaluation.faces import load_faces
from video_emotions.vision.modelfiles import file_sha256

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013"
CHECKPOINT = "checkpoint.pt"
ONNX_NAME = "model.onnx"
INPUT_SIZE = 48
OPSET = 17
#: The settings a resumed run must share with its checkpoint (threads and the like may change).
RECIPE_KEYS = (
    "train", "test", "net", "epochs", "warmup_epochs", "batch_size", "lr", "max_batches", "seed",
    "teacher", "temperature", "distill_weight", "vote_weight",
)  # fmt: skip
#: What a checkpoint written before a setting existed was trained with.
_RECIPE_DEFAULTS = {"vote_weight": 0.0}
#: A log-probability floor for teachers that give probabilities (log 0 is -inf).
_PROBABILITY_FLOOR = 1e-8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for checkpoint, ONNX, card and log.")
    parser.add_argument("--train", type=Path, default=SHARED / "train.npz", help="Training .npz.")
    parser.add_argument("--test", type=Path, default=SHARED / "public_test.npz", help="Reported test .npz.")
    parser.add_argument(
        "--net", choices=sorted(NETS), default="student", help="The network (training/net.py)."
    )
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1, help="Peak learning rate (for batches of 256).")
    parser.add_argument("--max-batches", type=int, default=None, help="Stop each epoch after N batches.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch.")
    parser.add_argument("--resume", action="store_true", help="Go on from OUT/checkpoint.pt.")
    parser.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="Distil from a finished run's folder, a registered classifier or an .onnx file (repeatable).",
    )
    parser.add_argument("--temperature", type=float, default=4.0, help="Distillation temperature.")
    parser.add_argument("--distill-weight", type=float, default=0.5, help="Weight of the distillation loss.")
    parser.add_argument(
        "--vote-weight",
        type=float,
        default=0.0,
        help="Share of FER+'s vote distribution in each face's target (the rest: its FER2013 label); "
        "the training .npz needs ferplus_votes (training/ferplus_join.py).",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="Train and export only; the card's figures need the service's environment (ONNX Runtime, PyAV).",
    )
    return parser.parse_args(argv)


def load_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 faces ``(N, 1, 48, 48)`` and int64 labels."""
    faces = load_faces(path)
    if faces.images.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise SystemExit(f"{path}: faces are {faces.images.shape[1:]}, the recipe needs 48x48")
    return torch.from_numpy(faces.images).unsqueeze(1), torch.from_numpy(faces.labels)


def vote_targets(path: Path, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """``(N, 7)`` targets: ``weight`` x the face's FER+ votes over EMOTIONS + the rest its label
    (the label alone for a face without votes)."""
    from video_emotions.evaluation.faces import vote_distribution

    with np.load(path) as data:
        if "ferplus_votes" not in data.files:
            raise SystemExit(f"{path}: no ferplus_votes array (make it with training/ferplus_join.py)")
        votes, classes = data["ferplus_votes"], [str(name) for name in data["vote_classes"]]
    distribution, has_votes = vote_distribution(votes, classes, source=str(path))
    share = torch.from_numpy(np.where(has_votes, weight, 0.0)[:, None]).float()
    onehot = F.one_hot(labels, len(EMOTIONS)).float()
    return share * torch.from_numpy(distribution).float() + (1 - share) * onehot


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 → float in [-1, 1], as EmotionClassifier feeds the exported model."""
    return (images.float() / 255.0 - 0.5) * 2.0


def learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


Teacher = Callable[[torch.Tensor], torch.Tensor]


def _run_teacher(folder: Path, device: torch.device) -> Teacher:
    state = torch.load(folder / CHECKPOINT, map_location=device, weights_only=False)
    if state["epoch"] < int(state["recipe"]["epochs"]):
        raise SystemExit(
            f"teacher {folder} has trained {state['epoch']} of {state['recipe']['epochs']} epochs"
        )
    net = build_net(state["recipe"].get("net", "student")).to(device).eval()
    net.load_state_dict(state["model"])
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def log_probabilities(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return F.log_softmax(net(images).float(), dim=1)

    return log_probabilities


def _classifier_teacher(spec: str) -> Teacher:
    """A classifier as ``video-emotions eval`` runs it (ONNX Runtime, the model's own input size)."""
    from video_emotions.config import Settings
    from video_emotions.errors import InputError, ModelUnavailableError
    from video_emotions.vision.classifier_registry import load_classifier

    try:
        classifier = load_classifier(spec, Settings())
    except (InputError, ModelUnavailableError) as exc:
        raise SystemExit(f"teacher {spec}: {exc}") from exc

    def log_probabilities(images: torch.Tensor) -> torch.Tensor:
        faces = ((images / 2 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).squeeze(1).cpu().numpy()
        probabilities = torch.from_numpy(classifier.probabilities(faces))
        return probabilities.clamp_min(_PROBABILITY_FLOOR).log().to(images.device)

    return log_probabilities


def load_teacher(spec: str, device: torch.device) -> Teacher:
    """Log-probabilities over EMOTIONS for normalised ``(N, 1, 48, 48)`` faces, from a finished run's
    folder (its checkpoint, in PyTorch) or a classifier the service can run."""
    folder = Path(spec)
    if folder.is_dir():
        if not (folder / CHECKPOINT).is_file():
            raise SystemExit(f"teacher {folder}: no {CHECKPOINT} in it")
        return _run_teacher(folder, device)
    return _classifier_teacher(spec)


def distillation_loss(
    logits: torch.Tensor, teacher_log_probabilities: list[torch.Tensor], temperature: float
) -> torch.Tensor:
    """``T² * KL(mean of the teachers' softened probabilities || the student's)``, per face."""
    targets = torch.stack([F.softmax(t / temperature, dim=1) for t in teacher_log_probabilities]).mean(0)
    student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, targets, reduction="batchmean") * temperature**2


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    hits = 0
    for start in range(0, len(images), 512):
        batch = normalise(images[start : start + 512])
        hits += int((model(batch).argmax(1) == labels[start : start + 512]).sum())
    return hits / max(1, len(images))


def save_checkpoint(path: Path, state: dict) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    torch.save(state, partial)
    partial.replace(path)


def train(args: argparse.Namespace, device: torch.device) -> dict:
    """Train (or go on training) and return the final checkpoint's state."""
    train_images, train_labels = load_split(args.train)
    if args.vote_weight > 0:
        train_labels = vote_targets(args.train, train_labels, args.vote_weight)
    train_images, train_labels = train_images.to(device), train_labels.to(device)
    test_images, test_labels = (t.to(device) for t in load_split(args.test))
    torch.manual_seed(args.seed)
    model = build_net(args.net).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, args.lr)
    recipe = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    state = {"epoch": 0, "seconds": 0.0, "history": [], "recipe": recipe}
    checkpoint = args.out / CHECKPOINT
    if args.resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        changed = sorted(
            key for key in RECIPE_KEYS if state["recipe"].get(key, _RECIPE_DEFAULTS.get(key)) != recipe[key]
        )
        if changed:
            raise SystemExit(f"{checkpoint} was trained with other {', '.join(changed)}: start a new --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        print(f"resumed after epoch {state['epoch']}", flush=True)
    # A finished run (resumed to export and report it elsewhere) needs no teachers.
    teachers = [load_teacher(spec, device) for spec in args.teacher] if state["epoch"] < args.epochs else []
    per_epoch = len(train_images) // args.batch_size
    if args.max_batches is not None:
        per_epoch = min(per_epoch, args.max_batches)
    if per_epoch == 0:
        raise SystemExit(f"{len(train_images)} training faces make no batch of {args.batch_size}")
    total, warmup = per_epoch * args.epochs, max(1, round(per_epoch * args.warmup_epochs))
    for epoch in range(state["epoch"], args.epochs):
        started = time.perf_counter()
        torch.manual_seed(args.seed * 100_003 + epoch + 1)
        order = torch.randperm(len(train_images)).to(device)
        model.train()
        losses = []
        for index in range(per_epoch):
            step = epoch * per_epoch + index
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, warmup, args.lr)
            chosen = order[index * args.batch_size : (index + 1) * args.batch_size]
            targets = train_labels[chosen]
            images, partners, weight = augment(normalise(train_images[chosen]), targets)
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(images).float()
            loss = weight * F.cross_entropy(logits, targets, label_smoothing=0.1)
            if weight < 1.0:
                loss = loss + (1 - weight) * F.cross_entropy(logits, partners, label_smoothing=0.1)
            if teachers:
                distilled = distillation_loss(logits, [t(images) for t in teachers], args.temperature)
                loss = (1 - args.distill_weight) * loss + args.distill_weight * distilled
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())  # no .item() here: on a GPU it would wait for every step
        seconds = time.perf_counter() - started
        test_accuracy = accuracy(model, test_images, test_labels)
        mean_loss = float(torch.stack(losses).mean())
        state["seconds"] += seconds
        state["history"].append(
            {
                "epoch": epoch + 1,
                "loss": mean_loss,
                "test_accuracy": test_accuracy,
                "seconds": seconds,
            }
        )
        state.update(epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict())
        save_checkpoint(checkpoint, state)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {mean_loss:.4f}, "
            f"test accuracy {test_accuracy:.4f}, {seconds:.0f} s ({per_epoch} batches)",
            flush=True,
        )
    return state


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def write_onnx(module: nn.Module, path: Path, input_size: int, metadata: dict[str, str]) -> Path:
    """``module`` (probabilities out) as ONNX: NCHW ``(N, 1, S, S)`` float32 faces normalised as
    ``(x / 255 - 0.5) * 2`` in, ``(N, 7)`` out, with the labels, layout, normalisation and
    ``metadata`` as properties; written beside ``path`` and renamed, so no reader sees half."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    torch.onnx.export(
        module.eval(),
        (torch.zeros(1, 1, input_size, input_size),),
        str(partial),
        dynamo=False,
        input_names=["input"],
        output_names=["probabilities"],
        dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}},
        opset_version=OPSET,
    )
    exported = onnx.load(str(partial))
    properties = {
        "labels": ",".join(EMOTIONS),
        "input_layout": "NCHW",
        "normalisation": "(x / 255 - 0.5) * 2",
    }
    onnx.helper.set_model_props(exported, properties | metadata)
    onnx.checker.check_model(exported)
    onnx.save(exported, str(partial))
    partial.replace(path)
    return path


def export_onnx(state: dict, path: Path) -> Path:
    """The trained model as ONNX: NCHW ``(N, 1, 48, 48)`` in, softmax ``(N, 7)`` out, with metadata."""
    model = build_net(state["recipe"]["net"])
    model.load_state_dict(state["model"])
    recipe = state["recipe"]
    return write_onnx(
        _Probabilities(model),
        path,
        INPUT_SIZE,
        {
            "source": (
                f"video-emotions training/train.py: {state['recipe']['net']} trained on FER2013 Training "
                f"({state['epoch']} epochs, seed {recipe['seed']}, batch {recipe['batch_size']}, "
                f"lr {recipe['lr']}, SGD-Nesterov, label smoothing 0.1, augmentation of shared/models.md"
                f"{_distillation_phrase(recipe)})"
            )
        },
    )


def _votes_phrase(recipe: dict) -> str:
    weight = recipe.get("vote_weight", 0.0)
    if not weight:
        return "the original FER2013 labels; FER+'s votes were not used."
    return (
        f"targets {weight:g} x FER+'s vote distribution (Microsoft's FERPlus, MIT) + {1 - weight:g} x the "
        "FER2013 label."
    )


def _distillation_phrase(recipe: dict) -> str:
    teachers = recipe.get("teacher") or []
    if not teachers:
        return ""
    names = ", ".join(Path(t).name for t in teachers)
    return f", distilled from {names} (T {recipe['temperature']}, weight {recipe['distill_weight']})"


def _card(state: dict, onnx_path: Path, results: dict[str, dict], device: torch.device) -> str:
    recipe = state["recipe"]
    parameters = sum(
        t.numel() for k, t in state["model"].items() if "running" not in k and "num_batches" not in k
    )
    net = recipe.get("net", "student")
    lines = [
        f"# Model card: {net} expression classifier (FER2013)",
        "",
        f"File `{onnx_path.name}` ({onnx_path.stat().st_size / 1e6:.2f} MB, "
        f"{parameters / 1e6:.2f} M parameters), "
        f"sha256 `{file_sha256(onnx_path)}`.",
        "Input: float32 NCHW `(N, 1, 48, 48)`, gray faces normalised as `(x / 255 - 0.5) * 2`; "
        f"output: softmax probabilities `(N, 7)` over `{','.join(EMOTIONS)}`.",
        "",
        "## Data",
        'FER2013 (research data from the 2013 Kaggle challenge "Challenges in Representation Learning: '
        'Facial Expression Recognition"): the Training split (28,709 faces, 48x48 gray) with '
        + _votes_phrase(recipe)
        + " "
        "Figures below are on the PublicTest split (3,589 faces), never used for training or model selection "
        "(the model is the last epoch's).",
        "",
        "## Recipe",
        f"`training/train.py` ({recipe['epochs']} epochs, batch {recipe['batch_size']}, "
        f"peak lr {recipe['lr']}, "
        f"{recipe['warmup_epochs']} warm-up epochs then cosine, seed {recipe['seed']}"
        + (f", at most {recipe['max_batches']} batches per epoch" if recipe["max_batches"] else "")
        + "): per-batch random affine (flip, ±15°, zoom 1/1.2 to 1.2, shift ±10%), brightness and contrast "
        "jitter, random erasing (p 0.5), mixup or cutmix on 30% of batches; label smoothing 0.1; "
        f"SGD-Nesterov 0.9, weight decay 5e-4{_distillation_phrase(recipe)}. "
        f"Net `{net}` of `training/net.py`: {NETS[net][1]}.",
        f"Trained on {device.type} ({platform.machine()}, torch {torch.__version__}): "
        f"{state['seconds'] / 60:.1f} min of training for {state['epoch']} epochs "
        "(per epoch: `history.json`; on a shared machine the time says more about the load than the recipe).",
        "",
        "## Figures on FER2013 PublicTest (ONNX Runtime, one thread, median ms per face)",
        "",
        "| view | accuracy [95% CI] | macro-F1 | ms/face b1 | ms/face b32 | "
        + " | ".join(f"recall {e}" for e in EMOTIONS)
        + " |",
        "| --- " * (5 + len(EMOTIONS)) + "|",
    ]
    for view, result in results.items():
        low, high = result["accuracy_ci95"]
        lines.append(
            f"| {view} | {result['accuracy']:.1%} [{low:.1%}, {high:.1%}] | {result['macro_f1']:.3f} | "
            f"{result['ms_per_face_b1']:.3f} | {result['ms_per_face_b32']:.3f} | "
            + " | ".join(f"{result['per_class_recall'][e]:.2f}" for e in EMOTIONS)
            + " |"
        )
    lines += [
        "",
        "Per-epoch loss and test accuracy: `history.json`.",
        "",
        "## Licence",
        "The code is the project's (MIT). The weights are derived from FER2013, whose faces were "
        "collected from the web for research; the dataset is distributed for research under the "
        "challenge's terms, and the weights inherit that limit: fine for research and internal "
        "evaluation; check the terms before any commercial use.",
        "",
    ]
    return "\n".join(lines)


def report(state: dict, onnx_path: Path, test: Path, device: torch.device) -> dict[str, dict]:
    """Evaluate the exported file as ``video-emotions eval`` does and write MODEL_CARD.md."""
    from video_emotions.evaluation.classifiers import FaceClassifier, evaluate
    from video_emotions.vision.classifier import EmotionClassifier

    faces = load_faces(test)
    results = {}
    for view, flip in (("single view", False), ("flip-averaged", True)):
        classifier = EmotionClassifier(onnx_path, input_size=INPUT_SIZE, threads=1, flip_average=flip)
        results[view] = evaluate(FaceClassifier(view, classifier), faces)
    out = onnx_path.parent
    (out / "MODEL_CARD.md").write_text(_card(state, onnx_path, results, device))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    state = train(args, device)
    onnx_path = export_onnx(state, args.out / ONNX_NAME)
    (args.out / "history.json").write_text(json.dumps(state["history"], indent=1))
    if args.no_report:
        return 0
    for view, result in report(state, onnx_path, args.test, device).items():
        print(
            f"{onnx_path} on {args.test.name}, {view}: accuracy {result['accuracy']:.4f}, "
            f"macro-F1 {result['macro_f1']:.4f}, "
            f"{result['ms_per_face_b1']:.3f} ms/face (batch 1, one thread)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
