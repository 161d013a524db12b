"""What the playbooks asked of the local AWS API: moto's request recorder, read back as actions.

The local AWS API records requests when it was started with ``MOTO_RECORDER_FILEPATH`` in its
environment (a file of its own, never the repository's). :class:`ApiRecorder` starts and stops the
recording and returns each request as ``{"action", "params", "agent"}``; :func:`ansible_calls`
keeps those Ansible's modules made (botocore's user agent names Ansible), not the data plane's or a
test's own. Used by the end-to-end tests (which writes a swap makes) and the benchmarks (how many
calls, of which kind).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable

READ_ACTIONS = ("Describe", "List", "Get", "BatchGet", "Lookup")


def request_action(entry: dict) -> tuple[str, dict]:
    """(Action, parameters) of one recorded request, whatever the protocol: JSON (X-Amz-Target),
    query (Action= in the form body), or RPC v2 CBOR (/service/.../operation/<Action>)."""
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    raw = entry.get("body") or ""
    body = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
    target = headers.get("x-amz-target")
    if target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        return target.rsplit(".", 1)[-1], params if isinstance(params, dict) else {}
    path = urllib.parse.urlsplit(entry.get("url", "")).path
    if "/operation/" in path:
        return path.rsplit("/", 1)[-1], {}
    form = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
    form.update(urllib.parse.parse_qs(urllib.parse.urlsplit(entry.get("url", "")).query))
    if "Action" in form:
        return form["Action"][0], {k: v[0] for k, v in form.items()}
    return f"{entry.get('method')} {path}", {}


class ApiRecorder:
    """Start, stop and read moto's recording of the requests to the API at ``endpoint_url``."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url

    def _call(self, action: str) -> bytes:
        method = "GET" if action == "download-recording" else "POST"
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/recorder/{action}", data=None, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def start(self) -> None:
        """Record every request from now on (an empty recording first)."""
        self._call("reset-recording")
        self._call("start-recording")

    def stop(self) -> list[dict]:
        """Stop recording; every request recorded, in order, as {"action", "params", "agent"}."""
        self._call("stop-recording")
        calls = []
        for line in self._call("download-recording").decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            agent = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}.get("user-agent", "")
            action, params = request_action(entry)
            calls.append({"action": action, "params": params, "agent": agent})
        return calls


def ansible_calls(calls: Iterable[dict]) -> list[dict]:
    """The requests Ansible's modules made (botocore's user agent says Ansible)."""
    return [call for call in calls if "Ansible/" in call.get("agent", "")]


def action_counts(calls: Iterable[dict]) -> Counter:
    """How many requests of each action."""
    return Counter(call["action"] for call in calls)


def writes(calls: Iterable[dict], ignore_lock: bool = True) -> list[str]:
    """The recorded calls that may change something; with ``ignore_lock``, not the environment
    lock's own parameter (taken and released by every operation)."""
    found = []
    for call in calls:
        if call["action"].startswith(READ_ACTIONS):
            continue
        name = str(call["params"].get("Name", ""))
        if (
            ignore_lock
            and call["action"] in ("PutParameter", "DeleteParameter", "AddTagsToResource")
            and (
                name.endswith("/lock")
                or "/lock.claim-" in name
                or str(call["params"].get("ResourceId", "")).endswith("/lock")
            )
        ):
            continue
        found.append(f"{call['action']} {json.dumps(call['params'], sort_keys=True, default=str)[:300]}")
    return found
