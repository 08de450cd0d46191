"""Outbound URLs (callback_url, VE_REMOTE_URL): only http(s) to public addresses unless
VE_OUTBOUND_ALLOW lists the host or its network; at submission, before each webhook POST, and for
the yolo_cloud engine."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service import RunningService, run_service
from video_emotions.config import Settings
from video_emotions.context import ServiceContext
from video_emotions.errors import InputError
from video_emotions.jobs import webhooks
from video_emotions.outbound import UnresolvedHostError, check_outbound_url, parse_outbound_allow
from video_emotions.vision.registry import ModelRegistry


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make ``socket.getaddrinfo`` answer ``answers`` (host → addresses; a missing host does not
    resolve); returns the hosts asked for, in order."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *_args: Any, **_kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://93.184.215.14/x", "gopher://a.example/", "//a/b"]
)
def test_only_http_and_https_go_out(url: str) -> None:
    with pytest.raises(InputError, match="must be an http:// or https:// URL"):
        check_outbound_url(url, "", what="callback_url")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("http://localhost:9/hook", "loopback"),
    ],
)
def test_addresses_that_are_not_public_are_refused(url: str, kind: str) -> None:
    with pytest.raises(InputError) as refused:
        check_outbound_url(url, "", what="callback_url")
    message = str(refused.value)
    assert message.startswith("callback_url host ") and f"({kind})" in message
    assert "VE_OUTBOUND_ALLOW" in message
    assert "/hook" not in message and "meta-data" not in message  # the host only, not the whole URL


def test_a_public_ip_literal_goes_out_without_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {})
    check_outbound_url("https://93.184.215.14/hooks?token=x", "", what="callback_url")
    check_outbound_url("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/", "", what="callback_url")
    assert asked == []


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:9/hook", "127.0.0.1"),
        ("http://127.0.0.1:9/hook", " 10.0.0.0/8 , 127.0.0.0/8 "),
        ("http://10.1.2.3/hook", "10.0.0.0/8"),
        ("http://[::1]:8080/hook", "::1"),
        ("http://[::1]:8080/hook", "[::1]"),
        ("http://169.254.169.254/", "169.254.169.254/32"),
        ("http://hooks.internal:8080/hook", "hooks.internal"),
        ("http://Hooks.Internal./hook", "hooks.internal"),
        ("http://localhost:9/hook", "localhost"),
    ],
)
def test_listed_hosts_and_networks_go_out(monkeypatch: pytest.MonkeyPatch, url: str, allow: str) -> None:
    asked = fake_dns(monkeypatch, {})
    check_outbound_url(url, allow, what="callback_url")
    assert asked == []  # an IP literal needs no DNS; a host listed by name is not looked up


def test_a_host_name_is_judged_by_every_address_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(
        monkeypatch,
        {
            "public.example": ["93.184.215.14"],
            "internal.example": ["10.0.0.7"],
            "mixed.example": ["93.184.215.14", "169.254.169.254"],
        },
    )
    check_outbound_url("https://public.example/hook", "", what="callback_url")
    with pytest.raises(InputError, match=r"'internal.example' resolves to .*10\.0\.0\.7 \(private\)"):
        check_outbound_url("https://internal.example/hook", "", what="callback_url")
    check_outbound_url("https://internal.example/hook", "10.0.0.0/24", what="callback_url")
    with pytest.raises(InputError, match=r"169\.254\.169\.254 \(link-local\)") as refused:
        check_outbound_url("https://mixed.example/hook", "", what="VE_REMOTE_URL")
    assert str(refused.value).startswith("VE_REMOTE_URL host 'mixed.example'")
    assert "93.184.215.14" not in str(refused.value)
    with pytest.raises(UnresolvedHostError, match=r"'nowhere\.example' does not resolve"):
        check_outbound_url("https://nowhere.example/hook", "", what="callback_url")


def test_a_malformed_allow_list_says_which_entry() -> None:
    assert parse_outbound_allow("") == (set(), [])
    hosts, networks = parse_outbound_allow("Hooks.Internal, 10.0.0.0/8,127.0.0.1")
    assert hosts == {"hooks.internal"} and [str(n) for n in networks] == ["10.0.0.0/8", "127.0.0.1/32"]
    with pytest.raises(InputError, match="VE_OUTBOUND_ALLOW entry 2 is not"):
        parse_outbound_allow("127.0.0.1,10.0.0.0/33")


# Where the service uses it ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A service that can sign webhooks, with no VE_OUTBOUND_ALLOW."""
    with run_service(tmp_path_factory.mktemp("outbound"), VE_WEBHOOK_SECRET=new_secret()) as running:
        yield running


def test_a_loopback_callback_url_is_refused_before_anything_is_queued(service: RunningService) -> None:
    response = httpx.post(
        f"{service.url}/v1/analyses",
        json={"session_id": 1, "interview_id": 1, "callback_url": "http://127.0.0.1:9/hook"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "callback_url host '127.0.0.1'" in detail and "(loopback)" in detail
    assert "VE_OUTBOUND_ALLOW" in detail
    assert service.ctx.db.list_jobs() == ([], 0)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    """An embedded database with one finished job whose callback_url is on ``hooks.example``."""
    context = ServiceContext.from_settings(
        Settings(data_dir=tmp_path, webhook_secret=new_secret(), webhook_attempts=3)
    )
    context.db.ingest(session_id=1, interview_id=1, segments=[])
    yield context
    context.db.dispose()


def job_with_callback(ctx: ServiceContext, url: str) -> str:
    job_id, _ = ctx.db.create_job(
        session_id=1, interview_id=1, model_type="default", active_key="k", chunks=[], callback_url=url
    )
    return job_id


def test_a_webhook_whose_host_now_resolves_inward_is_not_sent_nor_retried(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted at submission (a public address), the host then resolves to the metadata address: the
    delivery is one attempt with its error, and no request goes out."""
    fake_dns(monkeypatch, {"hooks.example": ["169.254.169.254"]})
    posted: list[str] = []
    monkeypatch.setattr(webhooks.httpx, "post", lambda url, **_kwargs: posted.append(url))
    job_id = job_with_callback(ctx, "https://hooks.example/hook")
    assert webhooks.deliver_webhook(ctx, job_id) is False
    assert posted == []
    (delivery,) = ctx.db.deliveries(job_id)
    assert delivery["attempt"] == 1 and delivery["status_code"] is None
    assert delivery["error"].startswith("not sent: callback_url host 'hooks.example'")
    assert "169.254.169.254 (link-local)" in delivery["error"]


def test_a_webhook_whose_host_does_not_resolve_is_tried_again(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {})
    monkeypatch.setattr(webhooks, "BACKOFF_S", 0.0)
    job_id = job_with_callback(ctx, "https://hooks.example/hook")
    assert webhooks.deliver_webhook(ctx, job_id) is False
    recorded = ctx.db.deliveries(job_id)
    assert [d["attempt"] for d in recorded] == [1, 2, 3]
    assert all("'hooks.example' does not resolve" in d["error"] for d in recorded)


def test_yolo_cloud_on_a_refused_address_is_unavailable_and_says_why(tmp_path: Path) -> None:
    """No request goes to a refused VE_REMOTE_URL: the engine is unavailable, as without the setting."""
    url = "http://169.254.169.254/v1/predict"
    registry = ModelRegistry(Settings(data_dir=tmp_path, remote_url=url, remote_retries=0))
    status = {s.name: s for s in registry.statuses()}["yolo_cloud"]
    assert status.available is False
    assert (
        status.reason.startswith("VE_REMOTE_URL host '169.254.169.254'")
        and "VE_OUTBOUND_ALLOW" in status.reason
    )
    assert registry.route("yolo_cloud").engine == "default"
    assert "VE_REMOTE_URL host '169.254.169.254'" in registry.route("yolo").note
