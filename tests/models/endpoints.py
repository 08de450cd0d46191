"""Prediction endpoints for the yolo_cloud tests: our own service, one that never answers, a flaky one."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.service import RunningService

#: VE_OUTBOUND_ALLOW for these endpoints, all on 127.0.0.1 (the service refuses loopback otherwise).
LOOPBACK = "127.0.0.1"


def predict_url(service: RunningService, model_type: str = "default") -> str:
    return f"{service.url}/v1/predict?model_type={model_type}"


def predict_requests(service: RunningService) -> int:
    """How many ``/v1/predict`` requests the service has answered (from uvicorn's access log)."""
    return service.log.read_text().count('"POST /v1/predict')


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/predict"


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1/predict"


class FlakyEndpoint:
    """Answers the first ``failures`` requests with 503, then forwards each one to ``target``."""

    def __init__(self, target: str, failures: int) -> None:
        self.target = target
        self.failures = failures
        self.calls = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.calls += 1
                if endpoint.calls <= endpoint.failures:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = httpx.post(
                    endpoint.target, content=body, headers={"Content-Type": "application/json"}, timeout=60
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/predict"

    def __enter__(self) -> FlakyEndpoint:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
