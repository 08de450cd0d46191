"""Command line: analyse | ingest | report | serve | worker | jobs | keys | models | db | eval |
eval-clips | retention | erase."""

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
retention_app = typer.Typer(help="Retention (VE_RETENTION_DAYS): delete what is older.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
audit_app = typer.Typer(help="The audit log (ve_audit): who did what, when, how.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


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
    context: Annotated[
        str | None, typer.Option(help="What the interview is for, as the policy names it (hiring, ...).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Where it takes place, as the policy names it (EU, ...).")
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="The purpose the recording was made for.")] = None,
    recorded_by: Annotated[str | None, typer.Option(help="Who recorded the interview.")] = None,
    recorded_at: Annotated[
        str | None,
        typer.Option(help="When it was recorded, ISO 8601 (2026-12-01T10:00:00+01:00; UTC without offset)."),
    ] = None,
    notice: Annotated[
        str | None, typer.Option(help="The text of the notice the candidate was shown.")
    ] = None,
    consent: Annotated[
        bool | None,
        typer.Option(
            "--consent/--no-consent",
            help="The candidate's consent: given, or refused; default: none recorded.",
        ),
    ] = None,
    consent_by: Annotated[str | None, typer.Option(help="Who recorded the consent.")] = None,
) -> None:
    """Register an interview in the configured database and storage so /analyse_video can run on it,
    with its facts (context and region for VE_POLICY_FILE, purpose, recording, notice, consent)."""
    from datetime import datetime

    from video_emotions.audit import cli_actor, record
    from video_emotions.context import ServiceContext
    from video_emotions.ingest import ingest_interview
    from video_emotions.segmentfile import load_segments

    try:
        try:
            recorded = datetime.fromisoformat(recorded_at) if recorded_at is not None else None
        except ValueError as exc:
            raise VideoEmotionsError(
                f"--recorded-at {recorded_at!r} is not an ISO 8601 date and time"
            ) from exc
        facts = {
            "context": context,
            "region": region,
            "purpose": purpose,
            "recorded_by": recorded_by,
            "recorded_at": recorded,
            "notice": notice,
            "consent": consent,
            "consent_by": consent_by,
        }
        rows = load_segments(segments, number_missing_ids=False) if segments is not None else None
        ctx = ServiceContext.from_settings(get_settings())
        done = ingest_interview(
            ctx,
            video,
            session_id=session,
            interview_id=interview,
            segments=rows,
            facts=facts,
        )
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    given = sorted(name for name, value in facts.items() if value is not None)
    record(
        ctx.db,
        actor=cli_actor(),
        action="interview_uploaded",
        outcome="ok",
        interview_id=interview,
        parameters={"session_id": session, "facts": given, "command": "ingest"},
    )
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
    from video_emotions.audit import cli_actor, record
    from video_emotions.context import ServiceContext
    from video_emotions.reports.report import write_report

    try:
        ctx = ServiceContext.from_settings(get_settings())
        write_report(ctx, interview_id, out)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    except OSError as exc:
        raise fail(VideoEmotionsError(f"--out {out}: {exc.strerror or exc}")) from exc
    record(
        ctx.db,
        actor=cli_actor(),
        action="export_read",
        outcome="ok",
        interview_id=interview_id,
        parameters={"format": "html", "command": "report"},
    )
    console.print(f"wrote {out}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (VE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (VE_PORT, default 8003).")] = None,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs).

    Refuses (exit 2) to listen beyond loopback without API keys, unless VE_ALLOW_OPEN=true, and to
    start with a VE_POLICY_FILE that cannot be read or holds a wrong rule.
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
    try:
        application = create_app(settings)  # reads VE_POLICY_FILE: a bad one stops the start here
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    uvicorn.run(application, host=listen, port=port or settings.port, log_config=log_config)


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


@retention_app.command("sweep")
def retention_sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be deleted.")] = False,
    days: Annotated[int | None, typer.Option(min=1, help="Days to keep; default VE_RETENTION_DAYS.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Delete our per-frame detail, chunk results and run logs (with VE_DELETE_VIDEOS: videos) older than
    VE_RETENTION_DAYS, as the service does every VE_RETENTION_SWEEP_HOURS. Exit 1 when a storage object
    could not be deleted (the next sweep tries again)."""
    from video_emotions.context import ServiceContext
    from video_emotions.retention import sweep

    try:
        report = sweep(ServiceContext.from_settings(get_settings()), days=days, dry_run=dry_run)
    except VideoEmotionsError as exc:
        raise fail(exc) from exc
    if as_json:
        _print_json(report.as_dict())
    else:
        typer.echo(report.summary())
        for key in report.run_logs + report.videos:
            typer.echo(f"  {'would delete' if dry_run else 'deleted'} {key}")
        for error in report.errors:
            typer.echo(f"  NOT deleted {error['key'] or '(listing)'}: {error['error']}")
    if report.errors:
        raise typer.Exit(1)


@app.command()
def erase(
    interview_id: Annotated[int, typer.Argument(help="The interview's id.", min=1)],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
) -> None:
    """Erase everything we hold of an interview, as DELETE /v1/interviews/ID does, and print what went.
    Exit 1 when a storage object could not be deleted (run it again to finish)."""
    from video_emotions.audit import cli_actor, record
    from video_emotions.context import ServiceContext
    from video_emotions.retention import erase_interview

    if not yes and not typer.confirm(f"Erase everything we hold of interview {interview_id}?"):
        raise typer.Exit(1)
    ctx = None
    try:
        ctx = ServiceContext.from_settings(get_settings())
        report = erase_interview(ctx, interview_id)
    except VideoEmotionsError as exc:
        if ctx is not None:
            who = cli_actor()
            record(ctx.db, actor=who, action="interview_erased", outcome="error", interview_id=interview_id)
        raise fail(exc) from exc
    audited = record(
        ctx.db,
        actor=cli_actor(),
        action="interview_erased",
        outcome="ok" if report.complete else "incomplete",
        interview_id=interview_id,
        parameters={"command": "erase"},
    )
    _print_json(report.as_dict())
    if not report.complete or not audited:  # not audited: the audit log's error is on stderr
        raise typer.Exit(1)


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


@models_app.command("cards")
def models_cards(
    out: Annotated[Path | None, typer.Option(help="Write it to FILE (docs/model-cards.md).")] = None,
) -> None:
    """Every engine's model card as Markdown: data, licence, uses, measured figures, limits."""
    from video_emotions.vision.cards import cards_markdown

    text = cards_markdown(get_settings().classifier)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


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


@audit_app.command("export")
def audit_export(
    since: Annotated[
        str, typer.Option(help="Rows written at or after it: ISO 8601 date or time (UTC without an offset).")
    ],
    until: Annotated[str | None, typer.Option(help="Rows written at or before it (as --since).")] = None,
    format: Annotated[str, typer.Option(help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="The file to write; default: standard output.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's rows (key id, cli:USER).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action's rows (results_read, ...).")] = None,
    interview: Annotated[int | None, typer.Option(help="Only this interview's rows.", min=1)] = None,
) -> None:
    """Export the audit log oldest first, as CSV (a header, parameters as JSON) or as a JSON list of
    the rows as GET /v1/audit gives them. The export is itself recorded (audit_read by cli:USER)."""
    import sys
    from collections.abc import Iterator
    from contextlib import nullcontext
    from datetime import datetime
    from typing import Any, TextIO

    from video_emotions.audit import ACTIONS, as_utc, cli_actor, csv_lines, entry_document, record
    from video_emotions.context import ServiceContext

    if format not in ("csv", "json"):
        raise fail(VideoEmotionsError(f"--format must be csv or json, not {format!r}"))
    if action is not None and action not in ACTIONS:
        raise fail(VideoEmotionsError(f"--action must be one of {', '.join(ACTIONS)}, not {action!r}"))
    bounds: dict[str, datetime | None] = {}
    for option, text in (("since", since), ("until", until)):
        try:
            bounds[option] = as_utc(datetime.fromisoformat(text)) if text is not None else None
        except ValueError as exc:
            raise fail(VideoEmotionsError(f"--{option} {text!r} is not an ISO 8601 date or time")) from exc
    ctx = ServiceContext.from_settings(get_settings())
    filters: dict[str, Any] = bounds | {"actor": actor, "action": action, "interview_id": interview}
    count = 0

    def documents() -> Iterator[dict[str, Any]]:
        nonlocal count
        last = 0
        while True:  # a batch at a time, by id: rows written meanwhile come at the end
            rows, _total = ctx.db.audit_entries(**filters, after_id=last, limit=1000)
            if not rows:
                return
            for row in rows:
                count += 1
                yield entry_document(row)
            last = rows[-1]["id"]

    def write(stream: TextIO) -> None:
        if format == "csv":
            stream.writelines(csv_lines(documents()))
            return
        stream.write("[")
        for number, document in enumerate(documents()):
            stream.write(("\n" if number == 0 else ",\n") + json.dumps(document))
        stream.write("\n]\n" if count else "]\n")

    try:
        with out.open("w", newline="") if out is not None else nullcontext(sys.stdout) as stream:
            write(stream)
    except OSError as exc:
        raise fail(VideoEmotionsError(f"--out {out}: {exc.strerror or exc}")) from exc
    asked = {key: v.isoformat() if isinstance(v, datetime) else v for key, v in filters.items()}
    record(
        ctx.db,
        actor=cli_actor(),
        action="audit_read",
        outcome="ok",
        interview_id=interview,
        parameters={key: value for key, value in asked.items() if value is not None}
        | {"format": format, "rows": count, "command": "audit export"},
    )
    if out is not None:
        console.print(f"wrote {count} rows to {out}")
