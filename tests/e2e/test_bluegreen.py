"""Blue/green end to end on the local cloud: the deploy, swap, rollback and status playbooks against
the moto server as the AWS API and a data plane of real processes (app tasks under gunicorn, a load
balancer routing real HTTP by the listener's weights, PostgreSQL).

One provisioned cloud serves the whole module (v1 on blue, 2 tasks; v2, v3 and v4 published), always
brought down at the end. The images are what they say: v1 and v3 are the checkout's app/, v2 is
another release of the code (``GET /`` and the ``X-App-Release`` header say so), v4 a release that
cannot start. Each test names the state it starts from (a fixture: blue serving v1, green
serving v2 with blue retired or standing by, ...) and the fixture brings the cloud there with the
operator's playbooks, or finds it there. In file order each test leaves the state the next one needs,
as an operator's runs would, so nothing is run twice:

    status (blue*) -> bad inputs -> a version not in ECR -> a broken image the circuit breaker rolls
    back -> a deploy that never turns healthy -> a curl container check -> deploy v2 (another
    release of the code), swap (canary), rollback, swap, retire blue, under load -> rollback after the
    retirement -> a canary of a failing release rolled back by its alarm -> a swap to the colour that
    has everything -> two swaps at once -> status -> deploy and swap killed between their steps.

Any test also runs alone (``pytest -k``): its fixture then deploys and swaps what it needs first.

"Nothing changed" is checked twice: a snapshot of everything an operation could change, read through
the API before and after, and the requests the playbook's modules made, recorded by the AWS API
(moto's recorder; botocore's user agent tells the playbook's requests from the data plane's).
"""

from __future__ import annotations

import json
import re
import threading
import time

import certifi
import pytest

from localcloud.crashpoints import Chain, ChainRun, run_chain, seeded
from localcloud.harness import (
    ENVIRONMENT,
    PREFIX,
    PROJECT,
    RELEASE_HEADER,
    LocalCloud,
    desired_counts,
    healthy_targets,
    listener_weights,
    provisioned_cloud,
    release_context,
    request,
    wait_for,
)
from localcloud.loadgen import percentile, start_load
from localcloud.recorder import ansible_calls, writes
from tests.e2e.localcloud_support import snapshot

# Alone (make e2e): the canary test's lock renewals every RENEW s are timed, and a second local cloud beside
# it on 2 cores once left a 15 s bake with a single renewal.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.alone, pytest.mark.timeout(3600)]

VERSIONS = {"blue": "v1", "green": "v2"}  # what each colour runs during the cycle under load
V2_RELEASE = "v2: another release of the code"  # what v2's code answers (v1, the checkout's app/, says nothing)
RELEASES = {"blue": None, "green": V2_RELEASE}  # X-App-Release of each colour during the cycle
V4_BROKEN = "items-api: release v4 cannot start (a fatal start-up bug, on purpose)"
V5_FAILING = "v5: fails every 2nd GET / of each worker (a bug, on purpose)"
LOCK = f"/{PROJECT}/{ENVIRONMENT}/lock"
RATE = 100  # requests per second of the load generator (loopback, a shared 2-core machine)
GRACE = 1.0  # seconds a change of weights may take to reach every response


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    cloud = provisioned_cloud(record=True)  # v1 on blue, 2 tasks, serving; green 0
    contexts = tmp_path_factory.mktemp("images")
    try:
        cloud.cli("publish", "v2", "--context", str(release_context(contexts / "v2", V2_RELEASE)))
        cloud.cli("publish", "v3")
        cloud.cli("publish", "v4", "--context", str(release_context(contexts / "v4", "v4", broken=V4_BROKEN)))
        cloud.cli("publish", "v5", "--context", str(release_context(contexts / "v5", V5_FAILING, fail_every=2)))
        yield cloud
    finally:
        cloud.down(remove=True)


# -- the states the tests start from ------------------------------------------------------------------
#
# Each test names the state it needs (a fixture below) and the fixture brings the module's cloud there
# from whatever state it is in, with the operator's own playbooks (deploy, swap), or finds it there and
# does nothing. In file order every state is the one the previous test left, so nothing runs twice;
# alone (``-k``), a test gets its state from the freshly provisioned cloud.


def header(headers: dict, name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def running_version(cloud: LocalCloud, colour: str) -> str:
    """The image tag of the task definition the colour's service runs."""
    ecs = cloud.client("ecs")
    service = ecs.describe_services(cluster=PREFIX, services=[f"{PREFIX}-{colour}"])["services"][0]
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    return definition["containerDefinitions"][0]["image"].rsplit(":", 1)[-1]


def serving(cloud: LocalCloud, colour: str, version: str) -> bool:
    """The colour runs ``version`` with its 2 tasks, both healthy targets."""
    return (
        desired_counts(cloud)[colour] == 2
        and running_version(cloud, colour) == version
        and healthy_targets(cloud, colour) >= 2
    )


def colour_tasks(cloud: LocalCloud, colour: str) -> list[str]:
    """The colour's tasks that have not stopped."""
    ecs = cloud.client("ecs")
    arns = ecs.list_tasks(cluster=PREFIX, serviceName=f"{PREFIX}-{colour}")["taskArns"]
    described = ecs.describe_tasks(cluster=PREFIX, tasks=arns)["tasks"] if arns else []
    return [t["taskArn"] for t in described if t["lastStatus"] != "STOPPED"]


def operate(cloud: LocalCloud, playbook: str, *args: str) -> None:
    run = cloud.playbook(playbook, *args)
    assert run.returncode == 0, f"bringing the cloud to the test's state: {playbook} {' '.join(args)}\n{run.tail()}"


def bring_to(
    cloud: LocalCloud, active: str, version: str, *, idle: str = "as it is", idle_version: str = "", fresh: bool = False
) -> LocalCloud:
    """``active`` has all of 443's traffic, running ``version`` with 2 healthy tasks; the other colour is
    ``retired`` (desired 0, no task left), ``standby`` (2 healthy tasks of ``idle_version``) or left as it
    is. ``fresh``: also no swap recorded on the listeners, as after provision. The lock is always free."""
    other = "green" if active == "blue" else "blue"
    lock = cloud.client("ssm").get_parameters_by_path(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True)["Parameters"]
    for parameter in [p["Name"] for p in lock if p["Name"].startswith(LOCK)]:
        print(f"\n[bluegreen] a lock parameter left by an earlier test removed: {parameter}")
        cloud.client("ssm").delete_parameter(Name=parameter)
    if not (listener_weights(cloud)[active] == 100 and serving(cloud, active, version)):
        if listener_weights(cloud)[active] == 100:  # active with another version: make it the idle colour
            operate(cloud, "deploy", "-e", f"version={running_version(cloud, active)}")
            operate(cloud, "swap", "-e", f"color={other}")
        operate(cloud, "deploy", "-e", f"version={version}")  # onto the idle colour: ``active``
        operate(cloud, "swap", "-e", f"color={active}")
    if idle == "retired" and (desired_counts(cloud)[other] or colour_tasks(cloud, other)):
        operate(cloud, "swap", "-e", f"color={active}", "-e", "retire_old=true")
        wait_for(lambda: not colour_tasks(cloud, other), timeout=120, what=f"{other}'s tasks gone")
    elif idle == "standby" and not serving(cloud, other, idle_version):
        operate(cloud, "deploy", "-e", f"version={idle_version}")
    if fresh:
        elbv2 = cloud.client("elbv2")
        lb = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]
        arns = [
            li["ListenerArn"] for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        ]
        elbv2.remove_tags(ResourceArns=arns, TagKeys=["BlueGreenFrom", "BlueGreenTo"])
    return cloud


@pytest.fixture
def fresh(cloud):
    """As after provision: blue serves v1 alone, green has nothing, no swap recorded, the lock free."""
    return bring_to(cloud, "blue", "v1", idle="retired", fresh=True)


@pytest.fixture
def blue_v1(cloud):
    """Blue serves v1 on 443 (green as the previous test left it)."""
    return bring_to(cloud, "blue", "v1")


@pytest.fixture
def green_v2(cloud):
    """Green serves v2 on 443 (blue as the previous test left it)."""
    return bring_to(cloud, "green", "v2")


@pytest.fixture
def green_v2_blue_retired(cloud):
    """Green serves v2; blue was retired (desired 0)."""
    return bring_to(cloud, "green", "v2", idle="retired")


@pytest.fixture
def green_v2_blue_v1_standby(cloud):
    """Green serves v2; blue stands by with 2 healthy tasks of v1."""
    return bring_to(cloud, "green", "v2", idle="standby", idle_version="v1")


def flat(text: str) -> str:
    """The output with YAML's line wrapping undone (messages are wrapped at ~80 columns)."""
    return " ".join(text.replace("''", "'").split())


def status_rows(output: str) -> dict[str, dict]:
    """The colour rows of status.yml's table: {colour: {marked, weight, test, version, ...}}."""
    rows = {}
    # Each row is an item of the list status.yml prints ("- blue* 100% ...").
    pattern = re.compile(
        r"^\s*(?:- )?(blue|green)(\*?)\s+(\d+)%\s+(\S+?)%?\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s", re.M
    )
    for m in pattern.finditer(output):
        rows[m.group(1)] = {
            "marked": m.group(2) == "*",
            "weight": int(m.group(3)),
            "test": m.group(4),
            "version": m.group(5),
            "task_definition": m.group(6),
            "desired": int(m.group(7)),
            "running": int(m.group(8)),
            "healthy": int(m.group(9)),
        }
    return rows


def served_by(url: str) -> tuple[str | None, str | None]:
    status, body, headers = request("GET", f"{url}/")
    assert status == 200, (status, body)
    return body.get("deployment"), body.get("version")


def create_item(url: str, name: str) -> tuple[int, str | None, str | None, str | None]:
    status, body, headers = request("POST", f"{url}/items", {"name": name})
    assert status == 201, (url, status, body)
    colour, version = header(headers, "X-Deployment-Color"), header(headers, "X-App-Version")
    return body["id"], colour, version, header(headers, RELEASE_HEADER)


def all_items(url: str) -> dict[int, str]:
    items, cursor = {}, None
    for _ in range(1000):
        status, body, _ = request("GET", f"{url}/items?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, (status, body)
        items.update({item["id"]: item["name"] for item in body["items"]})
        cursor = body.get("next_cursor")
        if not cursor:
            return items
    raise AssertionError("more than 1000 pages of items")


class Watch:
    """Polls ``read()`` in a thread; ``changes`` holds (wall time, value) each time the value changes."""

    def __init__(self, read, interval: float = 0.25):
        self.read, self.interval = read, interval
        self.changes: list[tuple[float, object]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                value = self.read()
            except Exception as error:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(error))
            else:
                if not self.changes or self.changes[-1][1] != value:
                    self.changes.append((time.time(), value))
            self._stop.wait(self.interval)

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(timeout=30)
        return [value for _, value in self.changes]


def WeightWatch(cloud, interval: float = 0.25) -> Watch:  # noqa: N802 - reads as the watcher it makes
    """The 443 listener's weights as they change."""
    return Watch(lambda: listener_weights(cloud), interval)


# -- status and refusals: nothing moves --------------------------------------------------------------


@pytest.mark.usefixtures("fresh")
def test_status_shows_the_table_with_the_active_colour_marked(cloud):
    run = cloud.playbook("status")
    assert run.returncode == 0, run.tail()
    assert run.changed == 0, run.tail()
    assert re.search(
        r"^\s*(?:- )?colour\s+weight\s+test\s+version\s+task definition\s+desired\s+running\s+healthy\s+deployed",
        run.stdout,
        re.M,
    ), run.tail()
    rows = status_rows(run.stdout)
    assert rows["blue"] == {
        "marked": True,
        "weight": 100,
        "test": "0",
        "version": "v1",
        "task_definition": rows["blue"]["task_definition"],
        "desired": 2,
        "running": 2,
        "healthy": 2,
    }, run.tail()
    assert rows["green"]["marked"] is False
    assert (rows["green"]["weight"], rows["green"]["desired"]) == (0, 0)
    assert re.match(rf"{PREFIX}-blue:\d+$", rows["blue"]["task_definition"])
    assert (
        "alarms: blue-5xx OK, blue-p99 OK, blue-unhealthy-hosts OK, green-5xx OK, green-p99 OK, "
        "green-unhealthy-hosts OK" in flat(run.stdout)
    ), run.tail()
    assert "last swap: none recorded" in run.stdout
    assert "lock: free" in run.stdout


@pytest.mark.usefixtures("blue_v1")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("-e", "color=purple"),
            "-e color=purple (bluegreen_color): the colours are blue and green. Nothing was changed.",
        ),
        (
            ("-e", "color=green", "-e", "canary=10,120"),
            "-e canary=10,120 (bluegreen_canary_steps): give the new colour's share of the traffic at each step, "
            "as increasing percentages "
            "from 1 to 100 ending at 100 (e.g. -e canary=10,50,100)",
        ),
        (
            ("-i", "inventories/nope", "-e", "color=green"),
            "platform_environment is not set: this inventory names no environment. Pick one with -i inventories/<env>",
        ),
    ],
    ids=["color=purple", "canary=10,120", "missing-environment"],
)
def test_a_bad_input_is_refused_clearly_and_changes_nothing(cloud, args, message):
    before = snapshot(cloud)
    cloud.recorder.start()
    run = cloud.playbook("swap", *args)
    calls = ansible_calls(cloud.recorder.stop())
    assert run.returncode != 0, run.tail()
    assert message in flat(run.output), run.tail()
    # Refused before the credentials are even asked for: not one AWS request.
    assert calls == [], calls
    assert snapshot(cloud) == before
    assert listener_weights(cloud) == {"blue": 100, "green": 0}


@pytest.mark.usefixtures("blue_v1")
def test_deploying_a_version_not_in_ecr_changes_nothing_and_says_why(cloud):
    before = snapshot(cloud)
    cloud.recorder.start()
    run = cloud.playbook("deploy", "-e", "version=v9")
    calls = ansible_calls(cloud.recorder.stop())
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    assert "Version v9 is not in ECR repository ecs-prod-local: push the image first" in out, run.tail()
    assert "`bin/localcloud publish v9`" in out and "Nothing was changed." in out
    assert any(call["action"] == "DescribeImages" for call in calls), calls  # it did look
    assert writes(calls, ignore_lock=False) == []  # and wrote nothing, not even the lock
    after = snapshot(cloud)
    assert after["listeners"] == before["listeners"]  # the weights of 443 and of the test listener
    assert after["services"] == before["services"]  # task definitions, desired counts, deployments
    assert after == before
    assert listener_weights(cloud) == {"blue": 100, "green": 0}


# -- deploys that fail: a diagnosis, and the traffic stays ----------------------------------------------


def _failed_deploy(cloud, settings: dict, version: str = "v3", timeout: int = 60) -> tuple[object, float, dict, dict]:
    before = snapshot(cloud)
    started = time.monotonic()
    run = cloud.playbook(
        "deploy", "-e", f"version={version}", "-e", json.dumps(settings), "-e", f"bluegreen_deploy_timeout={timeout}"
    )
    return run, time.monotonic() - started, before, snapshot(cloud)


def _traffic_stayed_on_blue(cloud, before: dict, after: dict) -> None:
    assert after["listeners"][443] == before["listeners"][443]
    assert listener_weights(cloud) == {"blue": 100, "green": 0}
    assert after["services"][f"{PREFIX}-blue"] == before["services"][f"{PREFIX}-blue"]
    assert served_by(cloud.https) == ("blue", "v1")


@pytest.mark.usefixtures("blue_v1")
def test_a_broken_image_the_circuit_breaker_rolls_back_fails_quoting_why(cloud):
    # v4 is a release whose code cannot start: its gunicorn config stops it with a message (exit code 1)
    # before it listens. ECS's circuit breaker fails the deployment and sends green back to its previous
    # task definition, whose targets turn healthy: they must not pass for v4's. The deploy fails before
    # any traffic moves, quoting why in the operator's words (the stopped tasks, their exit code, the
    # last line their process logged), and leaves green's record for the operator to inspect.
    run, elapsed, before, after = _failed_deploy(cloud, {}, version="v4")
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    print(f"\n[bluegreen] circuit-breaker deploy of the broken image failed after {elapsed:.0f} s")
    assert re.search(
        rf"green did not get 2 healthy target\(s\) running v4: the deployment of {PREFIX}-green:\d+ failed and ECS "
        rf"rolled the service back to {PREFIX}-green:\d+\. Traffic was not moved: it stays on blue\.",
        out,
    ), run.tail()
    assert re.search(r"service: desired 2, running \d+, pending \d+", out), run.tail()
    assert "deployments: PRIMARY" in out and "targets: " in out
    assert "recent service events, newest first:" in out and "deployment failed" in out, run.tail()
    quoted = re.findall(
        r"stopped task, newest first: task \w+ \(([^)]+)\): ([^;]+); container app exited with code (\d+)", out
    )
    assert quoted and all(code == "1" for _, _, code in quoted), run.tail()
    assert any(reason == "Essential container in task exited" for _, reason, _ in quoted), quoted
    assert f"its last log lines: ['{V4_BROKEN}'" in out or f"'{V4_BROKEN}']" in out, run.tail()
    assert "Ask the new version through the test listener" not in run.output  # diagnosed before any smoke test
    _traffic_stayed_on_blue(cloud, before, after)
    # What the operator can inspect: green's stopped tasks of v4 with their exit code, and their logs in
    # CloudWatch with the line the process died on.
    ecs = cloud.client("ecs")
    arns = ecs.list_tasks(cluster=PREFIX, serviceName=f"{PREFIX}-green", desiredStatus="STOPPED")["taskArns"]
    stopped = ecs.describe_tasks(cluster=PREFIX, tasks=arns)["tasks"] if arns else []
    broken = [t for t in stopped if t["containers"][0]["image"].endswith(":v4")]
    assert broken and all(t["containers"][0].get("exitCode") == 1 for t in broken), stopped
    definition = ecs.describe_task_definition(taskDefinition=broken[0]["taskDefinitionArn"])["taskDefinition"]
    options = definition["containerDefinitions"][0]["logConfiguration"]["options"]
    stream = f"{options['awslogs-stream-prefix']}/app/{broken[0]['taskArn'].rsplit('/', 1)[-1]}"
    events = cloud.client("logs").get_log_events(logGroupName=options["awslogs-group"], logStreamName=stream)
    assert V4_BROKEN in [e["message"] for e in events["events"]]


@pytest.mark.usefixtures("blue_v1")
def test_a_deploy_that_never_turns_healthy_times_out_with_a_diagnosis(cloud):
    # v3 starts but never serves: it waits for a database it cannot reach (verify-full against a CA bundle,
    # certifi's, that did not issue the database's certificate), up to 10 minutes, as a task stuck at
    # start-up would. The shortest timeout deploy accepts (30 s): the diagnosis is what is judged, not the wait.
    settings = {"ecs_db_ssl_root_cert": certifi.where(), "ecs_app_environment": {"DB_STARTUP_TIMEOUT": "600"}}
    run, elapsed, before, after = _failed_deploy(cloud, settings, timeout=30)
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    print(f"\n[bluegreen] never-healthy deploy failed after {elapsed:.0f} s (timeout 30 s)")
    assert (
        "green did not get 2 healthy target(s) running v3 within 30 s. Traffic was not moved: it stays on blue." in out
    ), run.tail()
    assert re.search(r"service: desired 2, running \d+, pending \d+", out), run.tail()
    assert re.search(r"targets: (none registered|\S+ (unhealthy|initial))", out), run.tail()
    # The service's own events are quoted (which ones depends on timing: on a busy machine the ELB
    # checks may already have replaced the tasks, and their stops and restarts be the newest).
    assert re.search(rf"recent service events, newest first: \[\W{{1,2}}\(service {PREFIX}-green\) ", out), run.tail()
    assert 30 <= elapsed < 600
    _traffic_stayed_on_blue(cloud, before, after)


@pytest.mark.usefixtures("blue_v1")
def test_a_deploy_whose_container_check_cannot_pass_never_gets_production_traffic(cloud):
    # The seed's mistake: curl in the container health check of an image without curl. The app
    # serves, so the target group's check passes and the targets turn healthy; the container check
    # fails, so ECS never completes the deployment and replaces the tasks. The deploy must not take
    # healthy targets for a healthy deployment: it fails, and 443 never sends v3 a request.
    curl_check = {
        "command": ["CMD-SHELL", "curl -f http://localhost:8000/live || exit 1"],
        "interval": 5,
        "timeout": 3,
        "retries": 2,
        "startPeriod": 0,
    }
    served = []
    stop = threading.Event()

    def watch_443():
        while not stop.is_set():
            served.append(served_by(cloud.https))
            stop.wait(0.2)

    watcher = threading.Thread(target=watch_443, daemon=True)
    watcher.start()
    try:
        run, elapsed, before, after = _failed_deploy(cloud, {"ecs_container_health_check": curl_check})
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    print(f"\n[bluegreen] deploy with a curl container check failed after {elapsed:.0f} s")
    # Which of three ways it ends depends on timing: the deployment still in progress at the timeout
    # with healthy targets, failed by the circuit breaker, or tasks replaced before two were up at once.
    assert re.search(
        rf"green did not get 2 healthy target\(s\) running v3(: its targets are healthy but the deployment of "
        rf"{PREFIX}-green:\d+ did not complete within 60 s|: the deployment of {PREFIX}-green:\d+ failed| within 60 s)",
        out,
    ), run.tail()
    assert "Traffic was not moved: it stays on blue." in out
    failures = re.search(r"failures among the service's events, newest first: \[[^]]*", out)
    assert failures and "failed container health checks" in failures.group(0), run.tail()
    assert "Ask the new version through the test listener" not in run.output  # no smoke test, no swap
    assert len(served) > 20 and set(served) == {("blue", "v1")}, set(served)
    _traffic_stayed_on_blue(cloud, before, after)


# -- the whole cycle under load ----------------------------------------------------------------------


@pytest.mark.usefixtures("blue_v1")
def test_deploy_swap_rollback_swap_retire_under_load_fails_no_request(cloud, tmp_path):
    steps = []  # {name, start, end, during: colours allowed, after: colours allowed}
    created = []  # (id, name, colour, version)

    def step(name, playbook, args, during, after, *, weights):
        start = time.time()
        run = cloud.playbook(playbook, *args)
        end = time.time()
        steps.append({"name": name, "start": start, "end": end, "during": set(during), "after": set(after)})
        assert run.returncode == 0, f"{name}:\n{run.tail()}"
        assert listener_weights(cloud) == weights, name
        if playbook in ("swap", "rollback"):
            # The table it ends with (built from what the switch returned) says what the listener says.
            rows = status_rows(run.stdout)
            assert {colour: row["weight"] for colour, row in rows.items()} == weights, (name, rows)
            assert [colour for colour, row in rows.items() if row["marked"]] == [max(weights, key=weights.get)], name
            assert "lock: free" in run.stdout, name
        time.sleep(3)  # a steady window, past the grace, before the next change
        return run

    def items_at(stage, expected):
        """Items through 443 (the active colour) and the test listener (the idle one), then all listed."""
        for url, colour in ((cloud.https, expected[443]), (cloud.test_url, expected.get(9443))):
            if colour is None:
                continue
            for n in range(2):
                name = f"{stage} {colour} #{n} ✓"
                item_id, served, version, release = create_item(url, name)
                assert (served, version, release) == (colour, VERSIONS[colour], RELEASES[colour]), (stage, url)
                created.append((item_id, name, served, version))
        listed = all_items(cloud.https)
        missing = [c for c in created if listed.get(c[0]) != c[1]]
        assert missing == [], f"{stage}: items lost {missing}"

    watch = WeightWatch(cloud)
    load = start_load(cloud.https, tmp_path / "load.jsonl", rate=RATE)
    began = time.time()
    try:
        time.sleep(3)
        items_at("start", {443: "blue"})
        step(
            "deploy v2 to green", "deploy", ["-e", "version=v2"], {"blue"}, {"blue"}, weights={"blue": 100, "green": 0}
        )
        assert listener_weights(cloud, 9443) == {"blue": 0, "green": 100}
        assert served_by(cloud.test_url) == ("green", "v2")
        assert request("GET", f"{cloud.test_url}/")[1].get("release") == V2_RELEASE  # v2's own code
        items_at("deployed", {443: "blue", 9443: "green"})
        step(
            "swap to green (canary 10,50,100)",
            "swap",
            ["-e", "color=green", "-e", "canary=10,50,100", "-e", "bake_seconds=3"],
            {"blue", "green"},
            {"green"},
            weights={"blue": 0, "green": 100},
        )
        items_at("swapped", {443: "green", 9443: "blue"})
        step("rollback", "rollback", [], {"blue", "green"}, {"blue"}, weights={"blue": 100, "green": 0})
        items_at("rolled back", {443: "blue", 9443: "green"})
        step(
            "swap to green",
            "swap",
            ["-e", "color=green"],
            {"blue", "green"},
            {"green"},
            weights={"blue": 0, "green": 100},
        )
        items_at("swapped again", {443: "green", 9443: "blue"})
        retired = step(
            "retire blue",
            "swap",
            ["-e", "color=green", "-e", "retire_old=true"],
            {"green"},
            {"green"},
            weights={"blue": 0, "green": 100},
        )
        assert desired_counts(cloud) == {"blue": 0, "green": 2}
        shown = status_rows(retired.stdout)
        assert {colour: row["desired"] for colour, row in shown.items()} == {"blue": 0, "green": 2}
        wait_for(lambda: not colour_tasks(cloud, "blue"), timeout=120, what="blue's tasks gone")
        items_at("retired", {443: "green"})
        time.sleep(3)
    finally:
        records = load.stop()
        weight_changes = list(watch.changes)
        watch.stop()
    ended = time.time()

    # 1. Not one failed request: no connection error, no status outside 2xx.
    failed = [r for r in records if r["error"] or not (200 <= (r["status"] or 0) < 300)]
    assert failed == [], f"{len(failed)} of {len(records)} requests failed, e.g. {failed[:5]}"

    # 2. The load was real: about RATE requests per second for the whole cycle.
    rate = len(records) / (ended - began)
    assert rate > RATE * 0.5, f"only {rate:.0f} requests/s"

    # 3. Every answer comes from a colour the weights allow at that time, running its version.
    def allowed(t):
        current = {"blue"}
        for s in steps:
            if s["start"] <= t <= s["end"] + GRACE:
                return s["during"]
            if t > s["end"] + GRACE:
                current = s["after"]
        return current

    wrong = [
        r
        for r in records
        if r["color"] not in allowed(r["t"])
        or VERSIONS.get(r["color"]) != r["version"]
        or RELEASES.get(r["color"]) != r["release"]
    ]
    assert wrong == [], f"{len(wrong)} answers from a colour the weights did not allow, e.g. {wrong[:5]}"

    # ... with data in every window: both colours answered during the canary, and each steady window
    # after a step was seen for at least two seconds of traffic.
    for s, following in zip(steps, [*steps[1:], None], strict=True):
        window = [r for r in records if s["end"] + GRACE < r["t"] < (following["start"] if following else ended)]
        assert len(window) >= RATE, f"after {s['name']}: only {len(window)} answers to check"
        assert {r["color"] for r in window} == s["after"], s["name"]
        # The code that answers is the new release's after each swap and the old one's after the rollback.
        assert {r["release"] for r in window} == {RELEASES[c] for c in s["after"]}, s["name"]
    canary = [r for r in records if steps[1]["start"] <= r["t"] <= steps[1]["end"]]
    assert {r["color"] for r in canary} == {"blue", "green"}

    # 4. The weights changed only while a playbook ran.
    for at, weights in weight_changes[1:]:
        assert any(s["start"] <= at <= s["end"] + 1 for s in steps), (
            f"weights {weights} changed at {at} outside a playbook"
        )
    assert watch.errors == []

    # 5. The items written along the way, on both colours, all persist.
    assert {(c[2], c[3]) for c in created} == {("blue", "v1"), ("green", "v2")}
    releases = {r["release"] for r in records}
    assert releases == {None, V2_RELEASE}, releases
    listed = all_items(cloud.https)
    assert [c for c in created if listed.get(c[0]) != c[1]] == []
    for item_id, name, _, _ in created[:: max(1, len(created) // 5)]:
        status, body, _ = request("GET", f"{cloud.https}/items/{item_id}")
        assert (status, body.get("name")) == (200, name)

    latencies = [r["latency"] for r in records]
    print(
        f"\n[bluegreen] cycle under load: {len(records)} requests in {ended - began:.0f} s ({rate:.0f}/s), "
        f"0 failed, p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
        f"{len(created)} items on both colours kept"
    )
    for s in steps:
        print(f"[bluegreen]   {s['name']:<36} {s['end'] - s['start']:6.1f} s")


# -- after the cycle: green has everything, blue was retired ------------------------------------------


@pytest.mark.usefixtures("green_v2_blue_retired")
def test_rollback_after_the_old_colour_was_retired_fails_clearly_and_changes_nothing(cloud):
    assert desired_counts(cloud) == {"blue": 0, "green": 2}
    before = snapshot(cloud)
    cloud.recorder.start()
    run = cloud.playbook("rollback")
    calls = ansible_calls(cloud.recorder.stop())
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    assert "Refused to send traffic to blue" in out, run.tail()
    assert "has a desired count of 0. Nothing was changed" in out, run.tail()
    # Gated before anything was written: no listener change, and not even the record of the swap.
    assert writes(calls) == [], writes(calls)
    assert snapshot(cloud) == before
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    assert served_by(cloud.https) == ("green", "v2")


RENEW = 5  # seconds between two renewals of the lock in the canary test's bake (the least allowed)


@pytest.mark.usefixtures("green_v2")
def test_a_canary_failing_requests_is_rolled_back_by_its_alarm_on_the_published_metrics(cloud, tmp_path):
    """v5 passes the smoke test but fails every 2nd ``GET /``: at the 10 % step the load balancer's own
    metrics put blue's 5xx-rate alarm in ALARM (the local cloud evaluates it; nothing sets it by hand),
    the swap rolls back citing the alarm and its data, and the failed requests are bounded by the canary
    share over the time blue had traffic."""
    run = cloud.playbook("deploy", "-e", "version=v5")  # onto the idle colour: blue
    assert run.returncode == 0, run.tail()
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    alarm = f"{PREFIX}-blue-5xx"
    cloudwatch, ssm = cloud.client("cloudwatch"), cloud.client("ssm")
    described = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
    returned = [m["Expression"] for m in described["Metrics"] if m.get("ReturnData")]
    assert returned == ["100 * FILL(errors, 0) / requests"], described

    def lock_value() -> dict:
        found = ssm.get_parameters(Names=[LOCK])["Parameters"]
        return json.loads(found[0]["Value"]) if found else {}

    load = start_load(cloud.https, tmp_path / "load.jsonl", rate=RATE, paths="/")
    watch = WeightWatch(cloud, interval=0.2)
    locks = Watch(lock_value, interval=0.3)
    # The bake renews the lock every 5 s (as well as before each later step); 90 s is far more than the
    # alarm needs (a 10 s period, evaluated a few seconds after it ends).
    swap = cloud.start_playbook(
        "swap",
        "-e",
        "color=blue",
        "-e",
        "canary=10,50,100",
        "-e",
        "bake_seconds=90",
        "-e",
        f"bluegreen_lock_renew_seconds={RENEW}",
        log=tmp_path / "swap.log",
    )
    try:
        run = swap.wait(timeout=300)
        time.sleep(GRACE)
    finally:
        records = load.stop()
        seen = watch.stop()
        held = [value for value in locks.stop() if value]
    assert run.returncode != 0, run.tail()
    out = flat(run.output)
    assert f"ROLLED BACK: blue at 10 % breached during the bake (alarm {alarm} is in ALARM" in out, run.tail()
    assert "All traffic is back on green." in out
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    assert served_by(cloud.https) == ("green", "v2")
    assert ssm.get_parameters(Names=[LOCK])["InvalidParameters"] == [LOCK]  # released

    # The alarm fired on data: the reason quoted is the evaluator's, citing the 5xx rate's datapoints
    # (the emulator keeps no alarm history to read it back from).
    assert re.search(r"Threshold Crossed: \d+ out of the last \d+ datapoints? \[[0-9.]+", out), run.tail()
    assert "greater than the threshold (5.0)" in out, run.tail()
    # Blue never got more than the canary's share.
    assert all(w["blue"] in (0, 10) for w in seen), seen
    # Every failure is one of v5's 500s, from blue; green failed nothing; no request failed otherwise.
    failed = [r for r in records if r["status"] != 200]
    assert all(r["status"] == 500 and r["color"] == "blue" and r["release"] == V5_FAILING for r in failed), failed[:5]
    to_blue = [r for r in records if r["color"] == "blue"]
    canary_seconds = max(r["t"] for r in to_blue) - min(r["t"] for r in to_blue)
    bound = 0.10 * RATE * canary_seconds * 2  # the share, the load, the time blue had traffic; 2x for chance
    print(
        f"\n[bluegreen] canary of a failing release: {len(failed)} of {len(records)} requests failed, "
        f"{len(to_blue)} reached blue in {canary_seconds:.1f} s before the rollback (bound {bound:.0f})"
    )
    assert 0 < len(failed) <= bound, (len(failed), bound)
    assert len(to_blue) <= bound, (len(to_blue), bound)

    # The lock while it baked: one holder throughout, renewed as the bake began and, when the bake
    # lasted two renewal intervals (and the playbook's own steps) before the alarm ended it, renewed
    # again with a later expiry. (The alarm may end the bake sooner: its 10 s period can close just
    # after blue's first requests.)
    assert held, "the lock was never seen held"
    assert {(value["token"], value["acquired_at"]) for value in held} == {(held[0]["token"], held[0]["acquired_at"])}
    renewals = {value["renewed_at"]: value["expires_at"] for value in held if "renewed_at" in value}
    assert renewals, held
    expiries = [renewals[stamp] for stamp in sorted(renewals)]
    assert expiries == sorted(expiries), renewals
    baked = max(r["t"] for r in to_blue) - min(r["t"] for r in to_blue)
    print(f"[bluegreen] the lock renewed {len(renewals)} time(s) in a bake of {baked:.1f} s (every {RENEW} s)")
    if baked > 2 * RENEW + 5:
        assert len(renewals) >= 2, (baked, renewals)


@pytest.mark.usefixtures("green_v2_blue_v1_standby")
def test_a_swap_to_the_colour_that_has_all_the_traffic_changes_nothing(cloud):
    # Blue runs v1 with 2 healthy tasks: a canary "back" to green must not send it 90 % first.
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    wait_for(
        lambda: desired_counts(cloud)["blue"] == 2 and healthy_targets(cloud, "blue") >= 2,
        timeout=120,
        what="blue healthy",
    )
    before = snapshot(cloud)
    watch = WeightWatch(cloud, interval=0.2)
    cloud.recorder.start()
    run = cloud.playbook("swap", "-e", "color=green", "-e", "canary=10,50,100", "-e", "bake_seconds=2")
    calls = ansible_calls(cloud.recorder.stop())
    seen = watch.stop()
    assert run.returncode == 0, run.tail()
    assert seen == [{"blue": 0, "green": 100}], seen
    assert run.changed == 0, run.tail()
    assert writes(calls) == [], writes(calls)
    assert snapshot(cloud) == before


def _is_subsequence(seen: list, legal: list) -> bool:
    position = iter(legal)
    return all(any(item == candidate for candidate in position) for item in seen)


@pytest.mark.usefixtures("green_v2_blue_v1_standby")
def test_two_swaps_at_once_run_one_after_the_other(cloud, tmp_path):
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    canary = ["-e", "canary=10,50,100", "-e", "bake_seconds=5"]
    watch = WeightWatch(cloud, interval=0.2)
    to_blue = cloud.start_playbook("swap", "-e", "color=blue", *canary, log=tmp_path / "to_blue.log")
    to_green = cloud.start_playbook("swap", "-e", "color=green", *canary, log=tmp_path / "to_green.log")
    runs = {"blue": to_blue.wait(timeout=600), "green": to_green.wait(timeout=600)}
    seen = watch.stop()
    final = listener_weights(cloud)

    # One complete swap one way, never a mix.
    assert final in ({"blue": 100, "green": 0}, {"blue": 0, "green": 100}), final
    winner = "blue" if final["blue"] == 100 else "green"
    assert runs[winner].returncode == 0, runs[winner].tail()
    # The other ran before it (and took effect), or was kept out by the lock and said so.
    loser = "green" if winner == "blue" else "blue"
    if runs[loser].returncode != 0:
        assert "Environment lock" in flat(runs[loser].output) and "is held by" in flat(runs[loser].output), runs[
            loser
        ].tail()
    # The listener went through one swap's steps at a time: blue's share, in order, is a part of
    # "blue first, then green" or "green first (nothing to do), then blue".
    blue_share = [w["blue"] for w in seen]
    assert all(w["blue"] + w["green"] == 100 for w in seen), seen
    assert _is_subsequence(blue_share, [0, 10, 50, 100, 90, 50, 0]) or _is_subsequence(blue_share, [0, 10, 50, 100]), (
        seen
    )
    print(f"\n[bluegreen] two swaps at once: weights {blue_share} (blue's share), final {final}")

    # The lock is free afterwards, with no claim left behind.
    parameters = cloud.client("ssm").get_parameters_by_path(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True)[
        "Parameters"
    ]
    assert [p["Name"] for p in parameters if p["Name"].startswith(LOCK)] == []
    status = cloud.playbook("status")
    assert status.returncode == 0, status.tail()
    assert "lock: free" in status.stdout
    rows = status_rows(status.stdout)
    assert rows[winner]["marked"] and rows[winner]["weight"] == 100
    assert not rows[loser]["marked"] and rows[loser]["weight"] == 0
    assert served_by(cloud.https) == (winner, {"blue": "v1", "green": "v2"}[winner])


# -- crash-resume: deploy and swap killed between their steps, under load --------------------------------


@pytest.mark.usefixtures("fresh")
def test_a_deploy_and_a_swap_killed_between_their_steps_resume_and_no_request_fails(cloud, tmp_path):
    """deploy.yml and swap.yml each killed once (SIGKILL or SIGINT, drawn) after a task drawn in the
    blue/green role's steps (``localcloud.crashpoints``), then run again, under load: the re-runs complete,
    no request fails and every answer comes from a colour with healthy tasks of its version (a colour
    without them would answer 502/503). ``CRASH_SEED`` draws the same points again."""
    seed, rng = seeded()
    smoke = ("-e", f"bluegreen_smoke_test_base_url={cloud.test_url}")
    runs: dict[str, list[ChainRun]] = {}

    def kill_in_the_steps(playbook: str) -> Chain:
        return Chain(playbook, rng, within=0.2, select=lambda key: key == "bluegreen#1")

    load = start_load(cloud.https, tmp_path / "load.jsonl", rate=50)
    try:
        time.sleep(2)
        deploy = kill_in_the_steps("deploy")
        runs["deploy"] = run_chain(cloud, deploy, "-e", "version=v2", *smoke)
        after_deploy = time.time()
        assert runs["deploy"][-1].returncode == 0, runs["deploy"][-1].output[-6000:]
        assert listener_weights(cloud) == {"blue": 100, "green": 0}
        assert serving(cloud, "green", "v2")
        swap = kill_in_the_steps("swap")
        runs["swap"] = run_chain(cloud, swap, "-e", "color=green", "-e", "canary=10,50,100", "-e", "bake_seconds=2")
        assert runs["swap"][-1].returncode == 0, runs["swap"][-1].output[-6000:]
        assert listener_weights(cloud) == {"blue": 0, "green": 100}
        time.sleep(2)
    finally:
        records = load.stop()
    points = deploy.points + swap.points
    print(f"\n[bluegreen] crash points (CRASH_SEED={seed}):")
    for point in points:
        print(f"[bluegreen]   {point.describe()}")
    assert len(points) == 2, [p.describe() for p in points]
    failed = [r for r in records if r["error"] or not (200 <= (r["status"] or 0) < 300)]
    assert failed == [], f"{len(failed)} of {len(records)} requests failed, e.g. {failed[:5]}"
    wrong = [r for r in records if VERSIONS.get(r["color"]) != r["version"]]
    assert wrong == [], f"answers of an unexpected version, e.g. {wrong[:5]}"
    # Production traffic stayed on blue until the swap began: the deploy's kill and re-run never moved it.
    early = [r for r in records if r["t"] < after_deploy]
    assert early and {r["color"] for r in early} == {"blue"}
    parameters = cloud.client("ssm").get_parameters_by_path(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True)
    assert [p["Name"] for p in parameters["Parameters"] if p["Name"].startswith(LOCK)] == []
    print(f"[bluegreen]   {len(records)} requests, 0 failed")
