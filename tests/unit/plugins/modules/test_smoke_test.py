"""Unit tests for ecs_production.platform.smoke_test against a real HTTP server on loopback: it asks until
the answer carries what is expected, says how far it got, and fails with the last answer."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import smoke_test as mod


class FakeClock:
    """Monotonic time that sleeping advances at once."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def server():
    """A server whose answers are taken in turn from ``server.answers`` ((status, body)); the last repeats."""
    answers: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.answers = answers
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def params(url, **overrides):
    return dict(
        {"url": url, "expect": {"version": "v2", "deployment": "green"}, "status": 200, "validate_certs": True,
         "timeout": 10, "interval": 2, "request_timeout": 5},
        **overrides,
    )  # fmt: skip


def test_asks_until_the_answer_carries_the_version_and_colour(server):
    server.answers.extend(
        [
            (503, b"down"),
            (200, {"version": "v1", "deployment": "blue"}),
            (200, {"version": "v2", "deployment": "green"}),
        ]
    )
    clock = FakeClock()
    result = mod.check(params(server.url), clock)
    assert "msg" not in result
    assert (result["status"], result["json"], result["attempts"]) == (200, {"version": "v2", "deployment": "green"}, 3)
    assert result["progress"] == [
        "0 s status 503, no JSON body",
        "2 s status 200, version v1 (not v2), deployment blue (not green)",
        "4 s status 200, version v2, deployment green",
    ]


def test_fails_with_the_last_answer_when_time_runs_out(server):
    server.answers.append((200, {"version": "v1", "deployment": "green"}))
    result = mod.check(params(server.url, timeout=6), FakeClock())
    assert result["attempts"] == 4
    assert result["msg"] == (
        f"{server.url} did not answer status 200, version v2, deployment green within 6 s; last: status 200, "
        "version v1 (not v2), deployment green"
    )
    assert len(result["progress"]) == 1  # the same answer each time


def test_no_answer_is_said_as_such(server):
    url = server.url
    server.shutdown()
    server.server_close()
    result = mod.check(params(url, timeout=0), FakeClock())
    assert result["status"] is None and result["attempts"] == 1
    assert "last: no answer (" in result["msg"]


def test_main_refuses_bad_options_before_sending(capsys):
    with patch_module_args({"url": "ftp://x", "interval": 0}), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] and "url must start with http:// or https://" in result["msg"]
    assert "interval must be at least 1, not 0" in result["msg"] and "Nothing was sent." in result["msg"]


def test_main_succeeds_against_the_server(server, capsys):
    server.answers.append((200, {"version": "v2", "deployment": "green", "extra": 1}))
    with patch_module_args(params(server.url)), pytest.raises(SystemExit):
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False and "failed" not in result and result["attempts"] == 1
