"""Command line: analyse | ingest | report | serve | worker | jobs | keys | models | db | eval |
eval-clips."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from video_emotions.config import get_settings
from video_emotions.domain import Segment
from video_emotions.errors import NotFoundError, VideoEmotionsError
from video_emotions.evaluation.cli import eval_command
from video_emotions.evaluation.clips_cli import eval_clips_command
from video_emotions.terminal import console, fail

app = typer.Typer(help="Facial expression estimates for interview videos.", no_args_is_help=True)
models_app = typer.Typer(help="Model files: pull them ahead of time, list the cache.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.command("eval")(eval_command)
app.command("eval-clips")(eval_clips_command)
db_app = typer.Typer(help="The service's own tables (ve_*) in the configured database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
jobs_app = typer.Typer(help="Analysis jobs: the records /v1/analyses shows.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
keys_app = typer.Typer(help="API keys (VE_API_KEYS): make a new one.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def analyse(
    video: Annotated[Path, typer.Argument(help="A local video file.")],
    segments: Annotated[
        Path | None, typer.Option(help="JSON list of {start, end} in ms; default: the whole video.")
    ] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between samples (default 1).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write results to FILE.json or FILE.csv.")] = None,
    model: Annotated[str | None, typer.Option(help="model_type to use.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Also draw the expression timeline to FILE.png.")] = None,
) -> None:
    """Analyse a local video; prints (or writes) the legacy JSON per segment with summaries."""
    from video_emotions.analysis import analyse_video
    from video_emotions.results import legacy_segment, segment_summary, segments_csv
    from video_emotions.segmentfile import load_segments
    from video_emotions.video.sampler import probe
    from video_emotions.vision.registry import ModelRegistry

    settings = get_settings()
    try:
        if not video.is_file():  # the path as given: the user's own, unlike a server's
            raise NotFoundError(f"video {video} does not exist")
        if segments is not None:
            chosen = [s for s in load_segments(segments) if s.speaker == 0]
        else:
            chosen = [Segment(id=1, start=0.0, end=probe(video).duration)]
        registry = ModelRegistry(settings)
        route = registry.route(model)  # yolo_cloud may fall back to yolo_local, any engine to default
        if route.note:
            console.print(route.note, markup=False, highlight=False, soft_wrap=True)
        engine = registry.load(route.engine)
        with Progress(
            TextColumn("analysing"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} frames"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("frames", total=None)
            results = analyse_video(
                video,
                chosen,
                engine,
                interval=interval or settings.interval,
                progress=lambda done, total, _segments: bar.update(task, completed=done, total=total),
            )
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    if plot is not None:
        from video_emotions.reports.plot import plot_timeline

        try:
            plot_timeline(results, plot)
        except OSError as exc:
            raise fail(VideoEmotionsError(f"--plot {plot}: {exc.strerror or exc}")) from exc
        console.print(f"wrote {plot}")
    if out is not None and out.suffix.lower() == ".csv":
        out.write_text(segments_csv(results))
        console.print(f"wrote {out}")
        return
    document = {
        "engine": engine.name,
        "model_file": engine.model_file,
        "model_sha256": engine.model_sha256,
        "segments": [
            {
                "id": r.segment.id,
                "start_ms": r.segment.start * 1000.0,
                "end_ms": r.segment.end * 1000.0,
                "summary": segment_summary(r, settings.aggregation),
                "video_emotions": legacy_segment(r),
            }
            for r in results
        ],
    }
    text = json.dumps(document, indent=1)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command()
def ingest(
    video: Annotated[Path, typer.Argument(help="The interview's video file.")],
    session: Annotated[int, typer.Option(help="Session id (created if new).")],
    interview: Annotated[int, typer.Option(help="Interview id (must be new).")],
    segments: Annotated[
        Path | None, typer.Option(help="JSON list of {start, end, speaker?, id?}; default: whole video.")
    ] = None,
) -> None:
    """Register an interview in the configured database and storage so /analyse_video can run on it."""
    from video_emotions.context import ServiceContext
    from video_emotions.ingest import ingest_interview
    from video_emotions.segmentfile import load_segments

    try:
        rows = load_segments(segments, number_missing_ids=False) if segments is not None else None
        done = ingest_interview(
            ServiceContext.from_settings(get_settings()),
            video,
            session_id=session,
            interview_id=interview,
            segments=rows,
        )
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    console.print(
        f"interview {interview} (session {session}): video at {done.key}, results rows {done.result_ids}"
    )


@app.command()
def report(
    interview_id: Annotated[int, typer.Argument(help="The interview's id.", min=1)],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one standalone HTML report of an analysed interview: timeline, segment table, engine.

    Everything is inlined (plotly.js too): it opens offline and can be attached to a message.
    """
    from video_emotions.context import ServiceContext
    from video_emotions.reports.report import write_report

    try:
        write_report(ServiceContext.from_settings(get_settings()), interview_id, out)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    except OSError as exc:
        raise fail(VideoEmotionsError(f"--out {out}: {exc.strerror or exc}")) from exc
    console.print(f"wrote {out}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (VE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (VE_PORT, default 8003).")] = None,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs).

    Refuses (exit 2) to listen beyond loopback without API keys, unless VE_ALLOW_OPEN=true.
    """
    import uvicorn

    from video_emotions.api.app import create_app
    from video_emotions.api.auth import check_exposure
    from video_emotions.observability.logs import configure_logging

    settings = get_settings()
    configure_logging(settings, capture_native=True)
    listen = host or settings.host
    try:
        open_warning = check_exposure(listen, settings)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    if open_warning:
        logging.getLogger(__name__).warning("%s", open_warning)
    # JSON: no logging set-up of uvicorn's own, so that its lines (the access log too) are ours.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    uvicorn.run(create_app(settings), host=listen, port=port or settings.port, log_config=log_config)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Chunks this worker runs at once (processes).")] = 1,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues (default VE_QUEUE).")] = None,
    name: Annotated[str | None, typer.Option(help="Worker name, as job records show it.")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics at :PORT/metrics; its pool's processes are "
            "in them only with PROMETHEUS_MULTIPROC_DIR set (an empty folder of this worker's own).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address of --metrics-port (0.0.0.0: reachable from other machines).")
    ] = "127.0.0.1",
) -> None:
    """Start a Celery worker for analysis chunks: VE_BROKER_URL, with the service's database and storage."""
    from video_emotions.jobs.celery_app import make_celery
    from video_emotions.observability.logs import adopt_celery_loggers, configure_logging

    settings = get_settings()
    configure_logging(settings, capture_native=True)
    json_logs = settings.log_format == "json"
    if json_logs:
        adopt_celery_loggers()
    try:
        celery = make_celery(settings)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    if metrics_port is not None:
        from video_emotions.observability.metrics import serve_worker_metrics

        try:
            serve_worker_metrics(metrics_port, metrics_host)  # before the pool forks
        except OSError as exc:
            raise fail(VideoEmotionsError(f"--metrics-port {metrics_port}: {exc}")) from exc
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--queues={queues or settings.queue}",
        "--loglevel=INFO",
    ]
    if name:
        argv.append(f"--hostname={name}")
    if json_logs:
        # Celery prints its start-up banner as plain text: one JSON line says what it would.
        logging.getLogger(__name__).info(
            "celery worker %s: queues %s, concurrency %d (prefork)",
            name or "(celery's default name)",
            queues or settings.queue,
            concurrency,
        )
        argv.insert(0, "--quiet")
    celery.worker_main(argv)


def _print_json(document: object) -> None:
    from fastapi.encoders import jsonable_encoder

    typer.echo(json.dumps(jsonable_encoder(document), indent=1))


@jobs_app.command("list")
def jobs_list(
    interview: Annotated[int | None, typer.Option(help="Only this interview's jobs.")] = None,
    state: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="The records as JSON, as the API gives them.")
    ] = False,
) -> None:
    """List jobs, newest first: state, progress, engine, workers, error."""
    from video_emotions.context import ServiceContext
    from video_emotions.jobs.records import job_document
    from video_emotions.storage.schema import JOB_STATES

    if state is not None and state not in JOB_STATES:
        raise fail(VideoEmotionsError(f"--state must be one of {', '.join(JOB_STATES)}, not {state!r}"))
    ctx = ServiceContext.from_settings(get_settings())
    records, total = ctx.db.list_jobs(interview_id=interview, state=state, limit=limit)
    documents = [job_document(ctx.db, record.id) for record in records]
    if as_json:
        _print_json({"items": documents, "total": total})
        return
    table = Table(title=f"{len(documents)} of {total} jobs")
    for column in (
        "id",
        "interview",
        "model_type",
        "engine",
        "state",
        "progress",
        "workers",
        "created",
        "error",
    ):
        table.add_column(column)
    for d in documents:
        assert d is not None
        table.add_row(
            d["id"],
            str(d["interview_id"]),
            d["model_type"],
            d["engine"] or "",
            d["state"],
            f"{d['progress']:.0%}",
            ", ".join(d["workers"]),
            f"{d['created_at']:%Y-%m-%d %H:%M:%S}",
            (d["error"] or {}).get("message") or "",
        )
    Console().print(table)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Print one job's record as JSON, as GET /v1/analyses/ID gives it."""
    from video_emotions.context import ServiceContext
    from video_emotions.jobs.records import job_document

    document = job_document(ServiceContext.from_settings(get_settings()).db, job_id)
    if document is None:
        raise fail(VideoEmotionsError(f"job {job_id} does not exist"))
    _print_json(document)


@keys_app.command("new")
def keys_new(
    key_id: Annotated[
        str | None, typer.Option("--id", help="The key's id (letters, digits, . _ -); default: key-RANDOM.")
    ] = None,
) -> None:
    """Make a new API key: print it (this once) and the KEY_ID:SHA256 entry to add to VE_API_KEYS."""
    import secrets

    from video_emotions.api.auth import KEY_ID, hash_key, new_key
    from video_emotions.errors import InputError

    key_id = key_id or f"key-{secrets.token_hex(4)}"
    if not KEY_ID.fullmatch(key_id):
        raise fail(InputError("--id must be 1 to 64 letters, digits, '.', '_' or '-'"))
    key = new_key()
    typer.echo(f"API key {key_id} (shown only this once: the service keeps only its hash):")
    typer.echo(f"  {key}")
    typer.echo("VE_API_KEYS entry (append it to the list, entries separated by commas):")
    typer.echo(f"  {key_id}:{hash_key(key)}")
    typer.echo("Send the key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.")


@models_app.command("pull")
def models_pull(
    deepface: Annotated[
        bool,
        typer.Option(
            "--deepface",
            help="Also put OpenCV's Haar cascades (from a pinned OpenCV 4 wheel) where DeepFace looks "
            "($DEEPFACE_HOME/.deepface/weights), for the deepface model's opencv detector.",
        ),
    ] = False,
) -> None:
    """Download, check and convert every model file the default pipeline needs."""
    from video_emotions.vision.mini_xception import ensure_mini_xception_onnx
    from video_emotions.vision.modelfiles import DEFAULT_SOURCES, ModelCache

    cache = ModelCache(get_settings().model_dir)
    try:
        for source in DEFAULT_SOURCES:
            console.print(f"{source.name}: {cache.fetch(source)}")
        console.print(f"mini-xception (ONNX): {ensure_mini_xception_onnx(cache)}")
        if deepface:
            from video_emotions.vision.deepface_engine import install_cascades, weights_dir

            for path in install_cascades(cache, weights_dir()):
                console.print(f"deepface (opencv detector): {path}")
    except VideoEmotionsError as exc:
        raise fail(exc) from exc


@models_app.command("list")
def models_list() -> None:
    """Show the model files in the cache with their sources, licences and sha256."""
    from video_emotions.vision.mini_xception import ONNX_FILENAME
    from video_emotions.vision.modelfiles import DEFAULT_SOURCES, MINI_XCEPTION_KERAS, ModelCache, file_sha256

    cache = ModelCache(get_settings().model_dir)
    table = Table(title=f"model cache: {cache.root}")
    for column in ("model", "file", "source", "licence", "sha256", "state"):
        table.add_column(column)
    for source in DEFAULT_SOURCES:
        path = cache.path(source)
        state = "missing"
        if path.is_file():
            state = "ok" if file_sha256(path) == source.sha256 else "sha256 MISMATCH"
        table.add_row(source.name, path.name, source.origin, source.license, source.sha256[:16], state)
    onnx = cache.root / MINI_XCEPTION_KERAS.name / ONNX_FILENAME
    table.add_row(
        MINI_XCEPTION_KERAS.name,
        onnx.name,
        f"converted from {MINI_XCEPTION_KERAS.filename}",
        MINI_XCEPTION_KERAS.license,
        file_sha256(onnx)[:16] if onnx.is_file() else "",
        "ok" if onnx.is_file() else "missing",
    )
    Console().print(table)


@models_app.command("export-yolo")
def models_export_yolo(
    source: Annotated[Path, typer.Argument(help="An ultralytics YOLO classification checkpoint (.pt).")],
    target: Annotated[Path, typer.Argument(help="The ONNX file to write (.onnx).")],
) -> None:
    """Export a YOLO classification .pt to ONNX (dynamic batch), which yolo_local runs without torch.

    Needs the [yolo] extra; the .onnx then needs nothing beyond the base install.
    """
    from video_emotions.vision.labels import label_columns
    from video_emotions.vision.yolo import OnnxYoloClassifier, export_onnx

    try:
        written = export_onnx(source, target)
        names = OnnxYoloClassifier(written).names
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    console.print(f"wrote {written}: classes {names}")
    try:
        label_columns(names, source=str(written))
    except ValueError as exc:
        console.print(f"[yellow]warning:[/yellow] yolo_local will refuse it: {exc}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the service's own tables to the latest version; safe to run again.

    Never creates, alters or drops the Interviewz tables (sessions, interviews, results).
    """
    from video_emotions.storage.db import Database

    settings = get_settings()
    db = Database(settings.resolved_database_url)
    try:
        revision = db.upgrade()
    finally:
        db.dispose()
    console.print(f"{db.engine.url.render_as_string(hide_password=True)}: our tables at revision {revision}")
