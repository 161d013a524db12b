"""The Dockerfile cannot be built here (no Docker engine), so its contract is checked instead:
what it copies exists, it runs as non-root, its base image is pinned by digest, its dependencies are
installed by hash from a lock that matches requirements.txt, the final stage has no build tools, and
its entry point and health check commands, run exactly as written, start the app and report it
healthy."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from items_support import APP_DIR, app_env, free_port

from items_api.healthcheck import DEFAULT_TIMEOUT

DOCKERFILE = APP_DIR / "Dockerfile"
HEALTHCHECK_COMMAND = ["python", "-m", "items_api.healthcheck"]
START_COMMAND = ["gunicorn", "-c", "gunicorn.conf.py", "items_api:create_app()"]


def all_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of every stage, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    parsed = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage (from its FROM on); global ARGs before the first FROM are left out."""
    found: list[list[tuple[str, str]]] = []
    for key, rest in all_instructions():
        if key == "FROM":
            found.append([])
        if found:
            found[-1].append((key, rest))
    return found


def instructions() -> list[tuple[str, str]]:
    """The final stage's instructions: what the image is."""
    return stages()[-1]


def single(keyword: str) -> str:
    found = [rest for key, rest in instructions() if key == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def exec_form(arguments: str) -> list[str]:
    command = json.loads(arguments)  # exec form: no shell, gunicorn is PID 1 and gets SIGTERM
    assert isinstance(command, list)
    return command


def test_base_image_is_slim_python_pinned_by_digest_with_its_tag_in_a_comment():
    arg = next(rest for key, rest in all_instructions() if key == "ARG" and rest.startswith("PYTHON_IMAGE="))
    match = re.fullmatch(r"PYTHON_IMAGE=(python:3\.\d+(\.\d+)?-slim(-\w+)?)@sha256:[0-9a-f]{64}", arg)
    assert match, arg
    lines = DOCKERFILE.read_text().splitlines()
    assert lines[lines.index(f"ARG {arg}") - 1] == f"# {match.group(1)}"
    assert [rest for _stage in stages() for key, rest in _stage[:1] if key == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE}",
    ]


def test_the_final_stage_has_the_virtualenv_and_no_build_tools():
    copies = [rest for key, rest in instructions() if key == "COPY"]
    assert "--from=build /venv /venv" in copies
    runs = " ".join(rest for key, rest in instructions() if key == "RUN")
    for tool in ("pip install", "apt-get", "gcc", "build-essential", "curl"):
        assert tool not in runs, tool
    env = dict(pair.split("=", 1) for key, rest in instructions() if key == "ENV" for pair in shlex.split(rest))
    assert env["PATH"].split(":")[0] == "/venv/bin"


def test_runs_as_a_non_root_user():
    user = single("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert instructions()[-1][0] in ("CMD", "ENTRYPOINT", "STOPSIGNAL")
    keys = [key for key, _ in instructions()]
    assert keys.index("USER") > max(i for i, key in enumerate(keys) if key in ("RUN", "COPY"))


def test_start_command_is_gunicorn_with_the_config_file():
    assert exec_form(single("CMD")) == START_COMMAND
    assert "ENTRYPOINT" not in dict(instructions())
    assert single("WORKDIR") == "/app"
    assert single("STOPSIGNAL") == "SIGTERM"


def test_health_check_is_the_python_liveness_probe():
    options, _, command = single("HEALTHCHECK").partition(" CMD ")
    assert exec_form(command) == HEALTHCHECK_COMMAND
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout
    # The probe must give up before Docker does, so a hung app reads as unhealthy, not as an error.
    assert int(timeout.group(1)) > DEFAULT_TIMEOUT


def test_everything_copied_exists_and_tests_stay_out_of_the_image():
    copies = [rest.split() for key, rest in all_instructions() if key == "COPY" and "--from=" not in rest]
    for *sources, _destination in copies:
        for source in sources:
            if not source.startswith("--"):
                assert (APP_DIR / source).exists(), source
    ignored = (APP_DIR / ".dockerignore").read_text().split()
    assert "*" in ignored
    # What the build context admits is what the COPY instructions take.
    admitted = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    copied = {Path(source).name for *sources, _ in copies for source in sources if not source.startswith("--")}
    assert admitted == copied
    assert not any(line.startswith("!tests") for line in ignored)


def test_runtime_dependencies_are_pinned_and_installed():
    requirements = [
        line.strip()
        for line in (APP_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements
    for requirement in requirements:
        assert re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[0-9][0-9A-Za-z.+-]*", requirement), requirement
    names = {re.split(r"[=\[]", r)[0].lower().replace("_", "-") for r in requirements}
    assert {"flask", "gunicorn", "psycopg", "psycopg-binary", "psycopg-pool", "boto3"} <= names
    runs = " ".join(rest for key, rest in stages()[0] if key == "RUN")
    assert "--require-hashes" in runs and "--no-deps" in runs and "--only-binary :all:" in runs
    assert "-r /tmp/requirements-lock.txt" in runs


def test_the_hashed_lock_pins_exactly_the_requirements_each_with_hashes():
    lock = (APP_DIR / "requirements-lock.txt").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", lock, re.M)
    locked = {name.lower().replace("_", "-"): version for name, version, _hashes in entries}
    pinned = {}
    for line in (APP_DIR / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.strip().partition("==")
            pinned[name.lower().replace("_", "-")] = version
    assert locked == pinned
    assert all(hashes.count("--hash=sha256:") >= 1 for _name, _version, hashes in entries)
    # Nothing in the lock without a hash (pip --require-hashes would refuse the whole install).
    requirement_lines = [line for line in lock.splitlines() if re.match(r"^[A-Za-z0-9_.-]+==", line)]
    assert len(requirement_lines) == len(entries)


@pytest.mark.slow
def test_the_image_commands_start_the_app_and_report_it_healthy(app_db, aws_env, tmp_path):
    """Run the CMD and the HEALTHCHECK exactly as the Dockerfile spells them, with this
    environment's ``gunicorn`` and ``python`` first on PATH as the image's are."""
    port = str(free_port())
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **app_env(app_db, aws_env, GUNICORN_WORKERS="1"),
        # The image listens on 0.0.0.0; tests bind loopback only.
        "APP_HOST": "127.0.0.1",
        "APP_PORT": port,
    }
    # Dockerfile ENV defaults, as the container would have them.
    for key, value in (pair.split("=", 1) for _, rest in instructions() if _ == "ENV" for pair in shlex.split(rest)):
        env.setdefault(key, value)
    start = exec_form(single("CMD"))
    probe = exec_form(single("HEALTHCHECK").partition(" CMD ")[2])

    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(start, cwd=APP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, cwd=APP_DIR, env=env, capture_output=True, check=False).returncode != 0:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "health check never passed"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0
    assert subprocess.run(probe, cwd=APP_DIR, env=env, capture_output=True, check=False).returncode == 1


def test_the_image_carries_the_rds_ca_bundle_where_the_platform_points_db_sslrootcert():
    adds = [rest.split() for key, rest in instructions() if key == "ADD"]
    bundle = [add for add in adds if add[-2] == "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"]
    assert len(bundle) == 1, adds
    assert "--chmod=0644" in bundle[0]  # ADD of a URL is 0600 otherwise: unreadable for the app user
    # The ecs role's defaults (plain "name: value" lines; the app's tests need no YAML parser).
    lines = (APP_DIR.parent / "roles" / "ecs" / "defaults" / "main.yml").read_text().splitlines()
    defaults = dict(line.split(": ", 1) for line in lines if line.startswith("ecs_db_ssl"))
    assert (defaults["ecs_db_sslmode"], defaults["ecs_db_ssl_root_cert"]) == ("verify-full", bundle[0][-1])
    keys = [key for key, _ in instructions()]
    assert keys.index("ADD") < keys.index("USER")
