"""Throughput of the job system: interviews per hour on this machine with one and two workers.

    python benchmarks/bench_throughput.py [--interviews 6] [--input 5min_720p] [--workers 1 2]

For each worker count, a service is started on the embedded default with ``VE_WORKERS`` set
(the local executor's pool), the input is ingested as ``--interviews`` interviews, and all of
them are queued at once through ``POST /v1/analyses``; the clock runs from the first request
to the last job's end. The service's CPU time over that span says how many cores it kept busy:
one analysis already runs a decoder per core beside its inference thread, so what a second
worker adds is the idle time it fills (the gaps while a job starts, writes and ends, and the
stretches where one analysis leaves a core waiting). Writes ``benchmarks/throughput.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import httpx
from bench import INPUTS, ingest, machine, process_cpu_seconds
from inputs import CACHE, SHARED, build_video

from tests.service import run_service


def run(workers: int, interviews: int, video: Path, segments: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ve-throughput-") as tmp:
        data_dir = Path(tmp) / "service"
        for number in range(1, interviews + 1):
            ingest(data_dir, number, video, segments)
        with run_service(data_dir, VE_WORKERS=str(workers)) as service:
            assert service.process is not None
            cpu = process_cpu_seconds(service.process.pid)
            started = time.perf_counter()
            jobs = []
            for number in range(1, interviews + 1):
                answer = httpx.post(
                    f"{service.url}/v1/analyses",
                    json={"session_id": 1, "interview_id": number, "model_type": "default"},
                    timeout=60,
                )
                answer.raise_for_status()
                jobs.append(answer.json()["id"])
            pending = set(jobs)
            while pending:
                time.sleep(0.1)
                for job in sorted(pending):
                    state = httpx.get(f"{service.url}/v1/analyses/{job}", timeout=60).json()["state"]
                    if state not in ("queued", "running"):
                        if state != "succeeded":
                            raise SystemExit(f"job {job} ended {state}")
                        pending.discard(job)
            elapsed = time.perf_counter() - started
            cpu = process_cpu_seconds(service.process.pid) - cpu
    return {
        "workers": workers,
        "interviews": interviews,
        "seconds": elapsed,
        "interviews_per_hour": interviews / elapsed * 3600,
        "cores_busy": cpu / elapsed,
    }


def main() -> None:
    names = {video.name: video for video in INPUTS}
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interviews", type=int, default=6)
    parser.add_argument("--input", choices=sorted(names), default="5min_720p")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "throughput.json")
    args = parser.parse_args()
    video, segments = build_video(names[args.input], shared=SHARED, out=CACHE)
    rows = [run(workers, args.interviews, video, segments) for workers in args.workers]
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "machine": machine(),
                "input": args.input,
                "runs": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\n{args.interviews} interviews of {args.input}, queued at once\n")
    print("| workers | seconds | interviews per hour | cores busy |")
    print("| ---: | ---: | ---: | ---: |")
    for row in rows:
        per_hour, busy = row["interviews_per_hour"], row["cores_busy"]
        print(f"| {row['workers']} | {row['seconds']:.1f} | {per_hour:.0f} | {busy:.2f} |")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
