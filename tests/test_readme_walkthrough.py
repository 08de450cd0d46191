"""The README's walk-through, run as a reader runs it, gives the outputs the README shows.

Its shell block is run command by command in one bash, on a fresh data folder (its own
``mktemp -d``). Four things differ from a reader's terminal: the service starts with the
alternative the block gives beside ``make run`` (no install from a test), on a free port instead
of 8003, with this interpreter, and ``../shared`` is wherever the test suite finds it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO, SHARED
from tests.service import WALKTHROUGH_SEGMENTS, free_port, service_env

README = REPO / "README.md"

#: What changes from one run to the next: the log's clock, the job id, durations.
VARYING = [
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "), "<time> "),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<job id>"),
    (re.compile(r" in \d+\.\d s$"), " in <seconds> s"),
    (re.compile(r" on local@\S+:\d+:"), " on local@<host>:<pid>:"),
    # The classifier file's sha256 changes with the file (VE_CLASSIFIER, the onnx version converting it).
    (re.compile(r"\bsha256 [0-9a-f]{64}\b"), "sha256 <sha256>"),
]


@dataclass
class Step:
    """A command of the block, and the output the README shows for it: the comment lines right
    below it (an explanatory comment has a blank line above it instead)."""

    command: str
    shown: list[str] = field(default_factory=list)


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def steps(block: str) -> list[Step]:
    found: list[Step] = []
    lines = iter(block.splitlines())
    showing = False
    for line in lines:
        if not line.strip():
            showing = False
        elif line.startswith("#"):
            if showing:
                found[-1].shown.append(line.removeprefix("#").removeprefix(" "))
        else:
            command = [line]
            while command[-1].endswith("\\"):
                command.append(next(lines))
            if heredoc := re.search(r"<<'(\w+)'", line):
                while command[-1] != heredoc.group(1):
                    command.append(next(lines))
            found.append(Step("\n".join(command)))
            showing = True
    return found


def steady(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, placeholder in VARYING:
            line = pattern.sub(placeholder, line)
        out.append(line.rstrip())
    return out


def as_run_here(command: str, port: int) -> str:
    if command.startswith("make run &"):
        command = command.split("# or: ", 1)[1].strip()
    command = command.replace(".venv/bin/video-emotions", f"{shlex.quote(sys.executable)} -m video_emotions")
    command = command.replace("../shared", shlex.quote(str(SHARED)))
    return command.replace("127.0.0.1:8003", f"127.0.0.1:{port}")


def test_the_walkthrough_gives_the_outputs_the_readme_shows(woman2_mp4: Path, tmp_path: Path) -> None:
    """``woman2_mp4``: the walk-through's video, there (or the test skipped, or failed in CI)."""
    text = section(README.read_text(), "## Walk-through with curl")
    block, *_ = fenced_blocks(text, "sh")
    walkthrough = steps(block)
    heredoc = next(step.command for step in walkthrough if "<<'JSON'" in step.command)
    assert json.loads(heredoc.split("\n", 1)[1].rsplit("\n", 1)[0]) == WALKTHROUGH_SEGMENTS

    port = free_port()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    script = ["set -e"]
    for number, step in enumerate(walkthrough):
        script.append(f"{{\n{as_run_here(step.command, port)}\n}} >{outputs / str(number)} 2>&1")
    # mktemp -d makes the walk-through's data folder under tmp_path; its export wins over this one.
    env = service_env(tmp_path, TMPDIR=str(tmp_path), VE_PORT=str(port))
    process = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=REPO, env=env, start_new_session=True)
    try:
        status = process.wait(timeout=300)
    finally:
        with suppress(ProcessLookupError):  # the service, when a step failed before `kill %1`
            os.killpg(process.pid, signal.SIGTERM)
    ran = [(outputs / str(number)).read_text() for number in range(len(walkthrough))]
    assert status == 0, ran

    for step, output in zip(walkthrough, ran, strict=True):
        if step.shown:
            real = output.splitlines()
            assert steady(real) == steady(step.shown), "\n".join(
                ["README shows:", *step.shown, "real:", *real]
            )

    emotions = json.loads(next(o for s, o in zip(walkthrough, ran, strict=True) if "/emotions" in s.command))
    shown = json.loads(fenced_blocks(text, "json")[0])
    first = emotions["segments"][0]["video_emotions"]
    assert list(first) == list(shown), json.dumps(first)
    for frame, values in shown.items():
        assert list(first[frame]) == list(values), json.dumps(first)
        assert all(abs(first[frame][label] - value) <= 0.01 for label, value in values.items()), json.dumps(
            first
        )
