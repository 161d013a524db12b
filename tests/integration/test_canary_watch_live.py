"""canary_watch catches a breach that happens DURING the watch, against the local AWS API.

A 20 s watch (one look a second) is started; once its first look has found nothing wrong, the test breaks the
canary - sets an alarm to ALARM, or deregisters a target - and the watch must return breached within a couple
of seconds, not at the end of the 20 s. Once with the module's Watcher in a thread (precise timing, real boto3
clients with the module's retries), once end to end through ansible-playbook.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.modules import canary_watch as mod
from integration_playbooks import ansible_env, command, play

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PREFIX = "cw-live"
TG_NAME = f"{PREFIX}-green"
FIVE_XX = f"{PREFIX}-green-5xx"
HOSTS = f"{PREFIX}-green-unhealthy-hosts"
TARGETS = [{"Id": "10.45.1.10", "Port": 8000}, {"Id": "10.45.1.11", "Port": 8000}]
DURATION = 20
INTERVAL = 1
BREAK_AFTER = 2  # seconds after the first look
# How soon after the break the watch must return: the next look (<= INTERVAL) plus slack for a loaded machine.
CAUGHT_WITHIN = INTERVAL + 2


@pytest.fixture
def canary(aws_api):
    """A fresh account with green's two alarms (OK) and its target group with two healthy targets; its ARN."""
    aws_api.reset()
    vpc_id = aws_api.client("ec2").create_vpc(CidrBlock="10.45.0.0/16")["Vpc"]["VpcId"]
    elbv2 = aws_api.client("elbv2")
    tg_arn = elbv2.create_target_group(Name=TG_NAME, Protocol="HTTP", Port=8000, TargetType="ip", VpcId=vpc_id)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=TARGETS)
    cloudwatch = aws_api.client("cloudwatch")
    for name, metric in ((FIVE_XX, "HTTPCode_Target_5XX_Count"), (HOSTS, "UnHealthyHostCount")):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/ApplicationELB",
            MetricName=metric,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="fixture")
    return tg_arn


def fire_five_xx(aws_api, _tg_arn) -> None:
    aws_api.client("cloudwatch").set_alarm_state(
        AlarmName=FIVE_XX, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint [9.0] was >= 1.0"
    )


def lose_a_target(aws_api, tg_arn) -> None:
    aws_api.client("elbv2").deregister_targets(TargetGroupArn=tg_arn, Targets=TARGETS[:1])


class SignallingClock(mod.Clock):
    """The real clock, which also says when the watch first sleeps: its first look is then done."""

    def __init__(self):
        self.first_look_done = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.first_look_done.set()
        super().sleep(seconds)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("break_canary", "reason"),
    [
        pytest.param(fire_five_xx, f"alarm {FIVE_XX} is in ALARM (Threshold Crossed", id="alarm"),
        pytest.param(lose_a_target, f"target group {TG_NAME}: 1 healthy of 2 required (1 registered)", id="health"),
    ],
)
def test_a_breach_during_the_watch_is_caught_at_the_next_look(aws_api, canary, break_canary, reason):
    tg_arn = canary
    cloudwatch = RetryingBotoClientWrapper(aws_api.client("cloudwatch"), mod.CLOUDWATCH_RETRY)
    elbv2 = RetryingBotoClientWrapper(aws_api.client("elbv2"), ELBV2_RETRY)
    request = mod.Request(
        alarm_names=[FIVE_XX, HOSTS],
        target_group=TG_NAME,
        min_healthy=2,
        duration=DURATION,
        interval=INTERVAL,
        fail_on_insufficient_data=False,
    )
    clock = SignallingClock()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = mod.Watcher(cloudwatch, elbv2, request, tg_arn, clock).watch()
        except Exception as e:  # noqa: BLE001 - reported below
            outcome["error"] = e
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    assert clock.first_look_done.wait(timeout=30), outcome
    time.sleep(BREAK_AFTER)
    assert thread.is_alive(), outcome  # still watching: the first looks found no breach
    break_canary(aws_api, tg_arn)
    broken = time.monotonic()
    thread.join(timeout=DURATION + 10)

    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert result["breached"] is True, result
    assert reason in result["reason"]
    assert result["checks"] >= 1 + BREAK_AFTER // INTERVAL
    assert outcome["ended"] - broken <= CAUGHT_WITHIN, (outcome["ended"] - broken, result)
    assert result["elapsed"] < DURATION / 2
    assert outcome["ended"] - started < DURATION / 2


# ---- end to end, through ansible-playbook ------------------------------------------------------------

PLAYBOOK = play(
    "Bake green",
    """\
  tasks:
    - name: Bake - watch the alarms and the health of green
      ecs_production.platform.canary_watch:
        alarm_names: [@FIVE_XX@, @HOSTS@]
        target_group: @TG_NAME@
        min_healthy: 2
        duration: @DURATION@
        interval: @INTERVAL@
      register: bake

    - name: Hand the result to the test
      ansible.builtin.copy:
        content: "{{ bake | to_json }}"
        dest: "{{ result_path }}"
        mode: "0600"
""",
)


def playbook_text() -> str:
    values = {"FIVE_XX": FIVE_XX, "HOSTS": HOSTS, "TG_NAME": TG_NAME, "DURATION": DURATION, "INTERVAL": INTERVAL}
    text = PLAYBOOK
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def wait_for_requests(aws_api, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while aws_api.request_count() < count:
        assert process.poll() is None, process.communicate()[0][-5000:]
        assert time.monotonic() < deadline, f"the watch made no AWS call in {timeout}s"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_playbook_task_returns_soon_after_a_breach_during_the_bake(aws_api, canary, tmp_path):
    playbook = tmp_path / "bake.yml"
    playbook.write_text(playbook_text())
    result_path = tmp_path / "bake.json"
    before = aws_api.request_count()
    process = subprocess.Popen(
        command(playbook, aws_api.endpoint_url, {"result_path": str(result_path)}),
        cwd=REPO,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The playbook's only AWS calls are the module's: the target group, then a first look (alarms, health).
        wait_for_requests(aws_api, before + 3, process)
        time.sleep(BREAK_AFTER)
        assert process.poll() is None, process.communicate()[0][-5000:]
        fire_five_xx(aws_api, canary)
        broken = time.monotonic()
        output, _ = process.communicate(timeout=DURATION + 60)
        finished = time.monotonic()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, output[-5000:]
    result = json.loads(result_path.read_text())
    assert result["breached"] is True, result
    assert result["changed"] is False
    assert result["reason"].startswith(f"alarm {FIVE_XX} is in ALARM (Threshold Crossed")
    assert result["checks"] >= 2, result  # the first look found nothing: the breach came during the watch
    assert result["elapsed"] < DURATION / 2, result
    # The task ended at the next look, not after 20 s (the copy task and ansible's teardown take a few seconds).
    assert finished - broken < DURATION / 2, (finished - broken, result)
