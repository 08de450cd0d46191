"""The live service's /docs (served whole from the service, for machines without internet access)
and its OpenAPI document (every error it declares, in the shape it answers), and the requests
that once answered 500 and now answer a clean 4xx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.service import RunningService, run_service

SCHEMAS = "#/components/schemas/"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(tmp_path_factory.mktemp("openapi")) as running:
        yield running


@pytest.fixture(scope="module")
def document(service: RunningService) -> dict[str, Any]:
    response = httpx.get(f"{service.url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def response_refs(response: dict[str, Any]) -> set[str]:
    """The component names a response's JSON body may be."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    choices = schema.get("anyOf", [schema])
    return {choice["$ref"].removeprefix(SCHEMAS) for choice in choices if "$ref" in choice}


def test_docs_page_needs_nothing_from_outside(service: RunningService) -> None:
    page = httpx.get(f"{service.url}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    service_host = urlsplit(service.url).netloc
    outside = [
        url for url in re.findall(r"https?://[^\s'\"<>)]+", html) if urlsplit(url).netloc != service_host
    ]
    assert outside == [], outside
    scripts = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", html)
    stylesheets = re.findall(r"<link[^>]*\bhref=[\"']([^\"']+)", html)
    assert scripts and stylesheets, html
    for reference in scripts + stylesheets:
        url = urljoin(f"{service.url}/docs", reference)
        assert urlsplit(url).netloc == service_host, url
        asset = httpx.get(url, timeout=30)
        assert asset.status_code == 200, url
        assert asset.content, url
    spec = re.search(r"url: '([^']+)'", html)
    assert spec is not None and httpx.get(urljoin(service.url, spec.group(1)), timeout=30).status_code == 200
    assert httpx.get(f"{service.url}/docs/oauth2-redirect", timeout=30).status_code == 200
    assert httpx.get(f"{service.url}/redoc", timeout=30).status_code == 404  # it would load a CDN


def test_the_bundled_swagger_ui_renders_openapi_3_1(
    service: RunningService, document: dict[str, Any]
) -> None:
    """Swagger UI 4 refuses an OpenAPI 3.1 document ("Unable to render this definition"): 5 reads it."""
    assert document["openapi"].startswith("3.1.")
    bundle = httpx.get(f"{service.url}/docs/assets/swagger-ui-bundle.js", timeout=30).text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert version is not None and int(version.group(1)) >= 5


def test_every_operation_declares_the_errors_it_gives(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's shape, which the service never answers
    assert schemas["ErrorBody"]["required"] == ["detail"]
    assert set(schemas["ValidationErrorBody"]["required"]) == {"detail", "errors"}
    for label, operation in operations(document):
        responses = operation["responses"]
        if label != "GET /health":
            assert response_refs(responses["401"]) == {"ErrorBody"}, label
        has_input = operation.get("parameters") or operation.get("requestBody")
        if has_input and "{job_id}" not in label:  # any string is a job_id: a wrong one is 404
            assert "ValidationErrorBody" in response_refs(responses["422"]), label
        for status, response in responses.items():
            if status >= "400" and status != "499":
                assert response_refs(response), f"{label} {status}: no body schema"
    by_label = dict(operations(document))
    emotions = by_label["GET /v1/interviews/{interview_id}/emotions"]
    interview_id = next(p for p in emotions["parameters"] if p["name"] == "interview_id")
    assert interview_id["schema"]["exclusiveMinimum"] == 0
    assert response_refs(by_label["GET /v1/analyses/{job_id}"]["responses"]["200"]) == {"AnalysisRecord"}
    assert set(by_label["DELETE /v1/analyses/{job_id}"]["responses"]) >= {"200", "404", "409"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # Non-finite numbers: their echo in "errors" made the 422 itself fail to encode.
        ("POST", "/v1/analyses", '{"session_id": 1, "interview_id": 1, "interval": NaN}'),
        ("POST", "/v1/analyses", '{"session_id": 1, "interview_id": 1, "interval": 1e999}'),
        # A tiny interval overflowed the expected sample count.
        ("POST", "/v1/analyses", '{"session_id": 1, "interview_id": 1, "interval": 5e-324}'),
        # Ids beyond a bigint overflowed SQLite's INTEGER.
        ("POST", "/v1/analyses", '{"session_id": 1, "interview_id": 100000000000000000000}'),
        ("GET", "/v1/interviews/100000000000000000000/emotions", None),
        ("GET", "/v1/interviews/0/emotions", None),
        ("POST", "/analyse_video?session_id=1&interview_id=100000000000000000000", None),
        ("GET", "/v1/analyses?interview_id=100000000000000000000", None),
        ("GET", "/v1/analyses?offset=100000000000000000000", None),
        # A string with other than ASCII in it, where base64 was expected.
        ("POST", "/v1/predict", '{"instances": [{"image": "\\u00e9t\\u00e9"}]}'),
    ],
)
def test_what_once_answered_500_is_a_clean_422(
    service: RunningService, method: str, path: str, body: str | None
) -> None:
    headers = {"content-type": "application/json"} if body is not None else {}
    response = httpx.request(method, f"{service.url}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/analyses/not-a-job%00"),
        ("DELETE", "/v1/analyses/not-a-job"),
        ("GET", "/v1/jobs/not-a-job"),
        ("GET", "/v1/jobs/6F9619FF-8B86-D011-B42D-00C04FC964FF"),  # a UUID, but not as we write them
    ],
)
def test_a_job_id_that_is_no_uuid_names_no_job(service: RunningService, method: str, path: str) -> None:
    response = httpx.request(method, f"{service.url}{path}", timeout=30)
    assert response.status_code == 404, response.text
    assert "does not exist" in response.json()["detail"]
