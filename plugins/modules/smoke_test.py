#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: smoke_test
version_added: 0.1.0
short_description: Ask a URL until it answers as expected, saying how far it got
description:
  - Sends C(GET) requests to O(url) until one answers with O(status) and a JSON body holding every key and value of
    O(expect), or until O(timeout) seconds have passed, O(interval) seconds apart.
  - Made for a blue/green deploy's smoke test - ask the new version through the test listener until it answers
    with its version and colour - but any JSON endpoint will do.
  - On success returns the answer; otherwise fails with what the last answer was (its status, the values that
    differed, or the connection error). Every distinct answer seen is listed in RV(progress), for C(-v).
  - Sends nothing but the requests; it changes nothing.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  url:
    description: The URL to ask (C(http) or C(https)).
    type: str
    required: true
  expect:
    description: Keys the JSON body must hold, each with exactly this value (compared as strings).
    type: dict
    default: {}
  status:
    description: The HTTP status the answer must have.
    type: int
    default: 200
  validate_certs:
    description: Whether to check the server's certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to keep asking.
    type: int
    default: 30
  interval:
    description: Seconds between two requests.
    type: int
    default: 2
  request_timeout:
    description: Seconds one request may take.
    type: int
    default: 10
notes:
  - Supports check mode; the requests are sent in check mode too (they change nothing).
"""

EXAMPLES = r"""
- name: Ask the new version through the test listener
  ecs_production.platform.smoke_test:
    url: https://app.example.com:9443/
    expect:
      version: v2
      deployment: green
    timeout: 30
  register: smoke
"""

RETURN = r"""
status:
  description: The HTTP status of the last answer; null without one.
  returned: always
  type: int
  sample: 200
json:
  description: The JSON body of the last answer; null when it had none.
  returned: always
  type: dict
  sample: {version: v2, deployment: green}
attempts:
  description: How many requests were sent.
  returned: always
  type: int
  sample: 3
waited:
  description: Seconds spent asking.
  returned: always
  type: float
progress:
  description: Each distinct answer, in order, prefixed with the seconds waited (C(0 s status 503)).
  returned: always
  type: list
  elements: str
"""

import json
import time
from typing import Any, Dict, Mapping, NamedTuple, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url


class Answer(NamedTuple):
    status: Optional[int]
    body: Optional[Dict[str, Any]]
    error: str = ""

    def summary(self, expect: Mapping[str, Any]) -> str:
        """What the answer was, told against what is expected: "status 200, version v1 (not v2)"."""
        if self.error:
            return f"no answer ({self.error})"
        parts = [f"status {self.status}"]
        if self.body is None:
            parts.append("no JSON body")
        else:
            parts.extend(
                f"{key} {self.body.get(key, '-')}" + ("" if matches(self.body, key, value) else f" (not {value})")
                for key, value in expect.items()
            )
        return ", ".join(parts)


def matches(body: Mapping[str, Any], key: str, value: Any) -> bool:
    return key in body and str(body[key]) == str(value)


def passed(answer: Answer, status: int, expect: Mapping[str, Any]) -> bool:
    return (
        answer.status == status
        and answer.body is not None
        and all(matches(answer.body, key, value) for key, value in expect.items())
    )


def ask(url: str, validate_certs: bool, request_timeout: int) -> Answer:
    try:
        response = open_url(url, method="GET", validate_certs=validate_certs, timeout=request_timeout)
        status, raw = response.status, response.read()
    except Exception as error:  # noqa: BLE001 - HTTPError carries a status; anything else is "no answer"
        status = getattr(error, "code", None)
        if status is None:
            return Answer(None, None, str(getattr(error, "reason", None) or error))
        raw = error.read() if hasattr(error, "read") else b""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Answer(status, body if isinstance(body, dict) else None)


def check(params: Mapping[str, Any], clock=time) -> Dict[str, Any]:
    started = clock.monotonic()
    progress = []
    attempts = 0
    while True:
        answer = ask(params["url"], params["validate_certs"], params["request_timeout"])
        attempts += 1
        waited = clock.monotonic() - started
        line = answer.summary(params["expect"])
        if not progress or not progress[-1].endswith(" " + line):
            progress.append(f"{round(waited)} s {line}")
        if passed(answer, params["status"], params["expect"]) or waited >= params["timeout"]:
            break
        clock.sleep(min(params["interval"], max(params["timeout"] - waited, 0.1)))
    result = {
        "status": answer.status,
        "json": answer.body,
        "attempts": attempts,
        "waited": round(clock.monotonic() - started, 1),
        "progress": progress,
    }
    if not passed(answer, params["status"], params["expect"]):
        expected = ", ".join([f"status {params['status']}"] + [f"{k} {v}" for k, v in params["expect"].items()])
        result["msg"] = f"{params['url']} did not answer {expected} within {params['timeout']} s; last: {line}"
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            expect=dict(type="dict", default={}),
            status=dict(type="int", default=200),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="int", default=30),
            interval=dict(type="int", default=2),
            request_timeout=dict(type="int", default=10),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = []
    if not params["url"].startswith(("http://", "https://")):
        problems.append(f"url must start with http:// or https://, not {params['url']!r}")
    for option, least in (("timeout", 0), ("interval", 1), ("request_timeout", 1)):
        if params[option] < least:
            problems.append(f"{option} must be at least {least}, not {params[option]}")
    if problems:
        module.fail_json(msg="; ".join(problems) + ". Nothing was sent.")
    result = check(params)
    if "msg" in result:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
