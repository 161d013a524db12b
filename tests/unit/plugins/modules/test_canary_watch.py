"""Unit tests for ecs_production.platform.canary_watch: input validation (no client is made for bad input), the
breach decision, the watch's schedule and its bound on a fake clock (no real sleeping) over fake CloudWatch and
ELBv2 clients whose state changes at given times, and main() end to end with patch_module_args."""

from __future__ import annotations

import json
import math
from unittest.mock import MagicMock

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.ecs_production.platform.plugins.module_utils import elbv2_listeners
from ansible_collections.ecs_production.platform.plugins.modules import canary_watch as mod

TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-green/0123456789abcdef"
FIVE_XX = "app-green-5xx"
HOSTS = "app-green-unhealthy-hosts"


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeClock:
    """Time that moves only when the watch sleeps or a fake call takes time."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds


class FakeAWS:
    """The CloudWatch and ELBv2 calls canary_watch makes, over a few alarms and one target group. ``events`` are
    (time, change) pairs applied once the clock reaches their time; each call takes ``call_time`` seconds and
    asks for retries."""

    def __init__(self, clock: FakeClock, alarms: dict | None = None, healthy: int = 2, unhealthy: int = 0):
        self.clock = clock
        self.alarms = {FIVE_XX: ("OK", ""), HOSTS: ("OK", "")} if alarms is None else dict(alarms)
        self.composite: set[str] = set()
        self.target_groups = {"app-green": TG_ARN, TG_ARN: TG_ARN}
        self.healthy = healthy
        self.unhealthy = unhealthy
        self.events: list[tuple[float, object]] = []
        self.call_time = 0.0
        self.calls: list[tuple[str, dict]] = []
        self.look_times: list[float] = []
        self.throttle: dict[str, int] = {}  # operation -> how many times to answer Throttling first
        self.errors: dict[str, str] = {}  # operation -> error code it answers

    def at(self, when: float, change) -> FakeAWS:
        self.events.append((when, change))
        return self

    def _record(self, name: str, kwargs: dict, retried: bool = True) -> None:
        if retried:
            assert kwargs.pop("aws_retry", None) is True, f"{name} called without aws_retry=True"
        for event in [e for e in self.events if e[0] <= self.clock.now]:
            self.events.remove(event)
            event[1](self)
        self.calls.append((name, kwargs))
        self.clock.now += self.call_time
        if self.throttle.get(name):
            self.throttle[name] -= 1
            raise client_error("Throttling")
        if name in self.errors:
            raise client_error(self.errors[name])

    def names(self) -> list[str]:
        return [name for name, _kwargs in self.calls]

    # CloudWatch

    def get_paginator(self, operation):
        assert operation == "describe_alarms"
        paginator = MagicMock()

        def paginate(**kwargs):
            pages = MagicMock()
            pages.build_full_result.side_effect = lambda: self._describe_alarms(kwargs)
            return pages

        paginator.paginate.side_effect = paginate
        return paginator

    def _describe_alarms(self, kwargs: dict) -> dict:
        self.look_times.append(self.clock.now)
        self._record("describe_alarms", dict(kwargs), retried=False)
        assert set(kwargs["AlarmTypes"]) == {"MetricAlarm", "CompositeAlarm"}
        assert 1 <= len(kwargs["AlarmNames"]) <= 100
        found = {"MetricAlarms": [], "CompositeAlarms": []}
        for name in kwargs["AlarmNames"]:
            if name in self.alarms:
                state, reason = self.alarms[name]
                key = "CompositeAlarms" if name in self.composite else "MetricAlarms"
                found[key].append({"AlarmName": name, "StateValue": state, "StateReason": reason})
        return found

    # ELBv2

    def describe_target_groups(self, **kwargs):
        self._record("describe_target_groups", kwargs)
        # As AWS: every reference described, or TargetGroupNotFound for the whole call.
        refs = kwargs.get("Names") or kwargs.get("TargetGroupArns")
        if any(ref not in self.target_groups for ref in refs):
            raise client_error("TargetGroupNotFound")
        return {"TargetGroups": [{"TargetGroupArn": self.target_groups[ref]} for ref in refs]}

    def describe_target_health(self, **kwargs):
        if not self.alarms_watched():
            self.look_times.append(self.clock.now)
        self._record("describe_target_health", kwargs)
        if kwargs["TargetGroupArn"] not in self.target_groups.values():
            raise client_error("TargetGroupNotFound")
        states = ["healthy"] * self.healthy + ["unhealthy"] * self.unhealthy
        return {"TargetHealthDescriptions": [{"TargetHealth": {"State": state}} for state in states]}

    def alarms_watched(self) -> bool:
        return "describe_alarms" in self.names()


def set_alarm(name: str, state: str, reason: str = ""):
    def change(fake: FakeAWS) -> None:
        fake.alarms[name] = (state, reason)

    return change


def set_healthy(count: int):
    def change(fake: FakeAWS) -> None:
        fake.healthy = count

    return change


def request(**overrides) -> mod.Request:
    values = {
        "alarm_names": [FIVE_XX, HOSTS],
        "target_group": "app-green",
        "min_healthy": 2,
        "duration": 60,
        "interval": 5,
        "fail_on_insufficient_data": False,
    }
    values.update(overrides)
    return mod.Request(**values)


def watch(fake: FakeAWS, req: mod.Request) -> dict:
    arn = TG_ARN if req.target_group else None
    return mod.Watcher(fake, fake, req, arn, fake.clock).watch()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# ---- input validation (no AWS call) ----

PARAMS = {
    "alarm_names": [FIVE_XX],
    "target_group": "app-green",
    "min_healthy": None,
    "duration": 60,
    "interval": 5,
    "fail_on_insufficient_data": False,
}


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        pytest.param({"duration": -1}, "duration must be 0 or more seconds, not -1", id="negative duration"),
        pytest.param({"interval": 0}, "interval must be at least 1 second, not 0", id="interval 0"),
        pytest.param({"interval": -5}, "interval must be at least 1 second, not -5", id="negative interval"),
        pytest.param(
            {"target_group": None, "min_healthy": 2},
            "min_healthy needs target_group",
            id="min_healthy without target_group",
        ),
        pytest.param({"min_healthy": 0}, "min_healthy must be at least 1, not 0", id="min_healthy 0"),
        pytest.param(
            {"alarm_names": [], "target_group": None}, "nothing to watch: give alarm_names, target_group", id="nothing"
        ),
        pytest.param({"alarm_names": [FIVE_XX, " "]}, "alarm_names[1] must be an alarm name, not ' '", id="blank"),
        pytest.param({"target_group": ""}, "target_group must be a target group name or ARN", id="empty tg"),
    ],
)
def test_check_params_finds_problems(params, problem):
    problems = mod.check_params(dict(PARAMS, **params))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"duration": 0},
        {"interval": 1},
        {"min_healthy": 3},
        {"alarm_names": [], "target_group": "app-green"},
        {"alarm_names": [FIVE_XX], "target_group": None},
    ],
)
def test_check_params_accepts_valid_input(params):
    assert mod.check_params(dict(PARAMS, **params)) == []


def test_request_from_params_strips_dedupes_and_defaults_min_healthy():
    req = mod.request_from_params(dict(PARAMS, alarm_names=[f" {FIVE_XX}", HOSTS, FIVE_XX], target_group=" x "))
    assert req.alarm_names == [FIVE_XX, HOSTS]
    assert req.target_group == "x"
    assert req.min_healthy == 1
    assert mod.request_from_params(dict(PARAMS, min_healthy=4)).min_healthy == 4


@pytest.mark.parametrize(
    ("duration", "interval", "looks"), [(0, 5, 1), (3, 1, 4), (60, 5, 13), (7, 5, 3), (4, 5, 2), (5, 5, 2)]
)
def test_max_looks(duration, interval, looks):
    assert mod.max_looks(duration, interval) == looks


# ---- the breach decision (no AWS call) ----


def look(alarms=None, healthy=2, registered=2) -> mod.Look:
    states = {FIVE_XX: mod.Alarm("OK"), HOSTS: mod.Alarm("OK")} if alarms is None else alarms
    return mod.Look(alarms=states, healthy=healthy, registered=registered)


def test_no_breach_when_alarms_are_ok_and_enough_targets_are_healthy():
    assert mod.breaches(request(), look()) == []


def test_breach_names_each_alarm_in_alarm_with_its_state_reason():
    alarms = {FIVE_XX: mod.Alarm("ALARM", "Threshold  Crossed:\n 1 datapoint"), HOSTS: mod.Alarm("ALARM")}
    assert mod.breaches(request(), look(alarms)) == [
        f"alarm {FIVE_XX} is in ALARM (Threshold Crossed: 1 datapoint)",
        f"alarm {HOSTS} is in ALARM",
    ]


def test_long_state_reasons_are_shortened():
    [problem] = mod.breaches(request(alarm_names=[FIVE_XX]), look({FIVE_XX: mod.Alarm("ALARM", "x" * 1000)}))
    assert problem.endswith("...)")
    assert len(problem) < 220


def test_breach_by_health_says_n_healthy_of_m_required():
    assert mod.breaches(request(min_healthy=3), look(healthy=2, registered=3)) == [
        "target group app-green: 2 healthy of 3 required (3 registered)"
    ]


def test_breach_by_alarm_and_health_together():
    problems = mod.breaches(request(), look({FIVE_XX: mod.Alarm("ALARM"), HOSTS: mod.Alarm("OK")}, healthy=1))
    assert problems == [
        f"alarm {FIVE_XX} is in ALARM",
        "target group app-green: 1 healthy of 2 required (2 registered)",
    ]


@pytest.mark.parametrize(("fail_on_insufficient_data", "breached"), [(False, False), (True, True)])
def test_insufficient_data_is_a_breach_only_when_asked(fail_on_insufficient_data, breached):
    req = request(fail_on_insufficient_data=fail_on_insufficient_data)
    problems = mod.breaches(req, look({FIVE_XX: mod.Alarm("INSUFFICIENT_DATA"), HOSTS: mod.Alarm("OK")}))
    assert problems == ([f"alarm {FIVE_XX} has INSUFFICIENT_DATA"] if breached else [])


def test_a_vanished_alarm_or_target_group_is_a_breach():
    problems = mod.breaches(request(), look({FIVE_XX: None, HOSTS: mod.Alarm("OK")}, healthy=None, registered=None))
    assert problems == [
        f"alarm {FIVE_XX} no longer exists",
        "target group app-green no longer exists: 0 healthy of 2 required",
    ]


def test_without_target_group_health_is_not_judged():
    assert mod.breaches(request(target_group=None), look(healthy=None, registered=None)) == []


def test_target_group_arn_is_shown_by_name():
    problems = mod.breaches(request(target_group=TG_ARN, min_healthy=5), look())
    assert problems == ["target group app-green: 2 healthy of 5 required (2 registered)"]


# ---- the watch, on a fake clock ----


def test_watch_without_breach_looks_for_the_whole_duration(clock):
    fake = FakeAWS(clock)
    result = watch(fake, request(duration=60, interval=5))
    assert result["breached"] is False
    assert result["reason"] == ""
    assert result["checks"] == 13
    assert fake.look_times == [5.0 * k for k in range(13)]
    assert result["elapsed"] == 60.0
    assert sum(clock.sleeps) == 60.0
    assert result["alarms"] == {FIVE_XX: "OK", HOSTS: "OK"}
    assert result["healthy"] == 2
    assert result["changed"] is False
    assert result["msg"].startswith("No breach in 60.0s (13 looks): alarms app-green-5xx, app-green-unhealthy-hosts")


def test_watch_breaches_by_alarm_and_stops_at_once(clock):
    fake = FakeAWS(clock).at(12, set_alarm(FIVE_XX, "ALARM", "Threshold Crossed"))
    result = watch(fake, request(duration=60, interval=5))
    assert result["breached"] is True
    assert result["reason"] == f"alarm {FIVE_XX} is in ALARM (Threshold Crossed)"
    assert result["checks"] == 4  # 0, 5, 10, then 15 sees it
    assert result["elapsed"] == 15.0
    assert result["alarms"] == {FIVE_XX: "ALARM", HOSTS: "OK"}
    assert result["msg"].startswith("Breached at look 4, 15.0s into the 60s watch: alarm app-green-5xx is in ALARM")


def test_watch_breaches_by_health(clock):
    fake = FakeAWS(clock).at(21, set_healthy(1))
    result = watch(fake, request(duration=60, interval=5, min_healthy=2))
    assert result["breached"] is True
    assert result["reason"] == "target group app-green: 1 healthy of 2 required (1 registered)"
    assert result["healthy"] == 1
    assert result["checks"] == 6
    assert result["alarms"] == {FIVE_XX: "OK", HOSTS: "OK"}


def test_watch_breached_at_the_first_look_does_not_sleep(clock):
    fake = FakeAWS(clock, healthy=0)
    result = watch(fake, request())
    assert result["breached"] is True
    assert result["checks"] == 1
    assert clock.sleeps == []
    assert result["elapsed"] == 0.0


def test_watch_of_the_target_group_alone(clock):
    fake = FakeAWS(clock, alarms={}, healthy=3)
    result = watch(fake, request(alarm_names=[], duration=10, interval=5, min_healthy=3))
    assert result["breached"] is False
    assert result["alarms"] == {}
    assert result["checks"] == 3
    assert "describe_alarms" not in fake.names()
    assert (
        result["msg"] == "No breach in 10.0s (3 looks): target group app-green: 3 healthy of 3 required (3 registered)"
    )


def test_watch_of_alarms_alone_makes_no_elbv2_call(clock):
    fake = FakeAWS(clock)
    result = watch(fake, request(target_group=None, duration=2, interval=1))
    assert result["breached"] is False
    assert result["healthy"] is None
    assert result["target_group_arn"] is None
    assert set(fake.names()) == {"describe_alarms"}


def test_duration_zero_looks_once(clock):
    fake = FakeAWS(clock)
    result = watch(fake, request(duration=0))
    assert result["checks"] == 1
    assert clock.sleeps == []


def test_the_last_look_is_at_the_end_of_the_duration(clock):
    fake = FakeAWS(clock)
    result = watch(fake, request(duration=7, interval=5))
    assert fake.look_times == [0.0, 5.0, 7.0]
    assert result["checks"] == 3


def test_a_missing_alarm_is_refused_before_watching(clock):
    fake = FakeAWS(clock, alarms={FIVE_XX: ("OK", "")})
    with pytest.raises(mod.Refused, match=f"CloudWatch alarm\\(s\\) not found: {HOSTS}. Nothing was watched"):
        watch(fake, request())
    assert clock.sleeps == []
    assert fake.names().count("describe_alarms") == 1


def test_an_alarm_deleted_during_the_watch_is_a_breach(clock):
    def delete(fake: FakeAWS) -> None:
        del fake.alarms[HOSTS]

    fake = FakeAWS(clock).at(6, delete)
    result = watch(fake, request())
    assert result["breached"] is True
    assert result["reason"] == f"alarm {HOSTS} no longer exists"
    assert result["alarms"] == {FIVE_XX: "OK", HOSTS: None}


def test_a_target_group_deleted_during_the_watch_is_a_breach(clock):
    def delete(fake: FakeAWS) -> None:
        fake.target_groups.clear()

    fake = FakeAWS(clock).at(6, delete)
    result = watch(fake, request())
    assert result["breached"] is True
    assert result["reason"] == "target group app-green no longer exists: 0 healthy of 2 required"
    assert result["healthy"] is None


def test_insufficient_data_is_named_but_not_a_breach_by_default(clock):
    fake = FakeAWS(clock, alarms={FIVE_XX: ("INSUFFICIENT_DATA", ""), HOSTS: ("OK", "")})
    result = watch(fake, request(duration=5))
    assert result["breached"] is False
    assert f"(INSUFFICIENT_DATA, not counted as a breach: {FIVE_XX})" in result["msg"]
    result = watch(FakeAWS(clock, alarms=fake.alarms), request(duration=5, fail_on_insufficient_data=True))
    assert result["breached"] is True
    assert result["reason"] == f"alarm {FIVE_XX} has INSUFFICIENT_DATA"


def test_composite_alarms_are_watched(clock):
    fake = FakeAWS(clock, alarms={"app-green-any": ("ALARM", "")})
    fake.composite.add("app-green-any")
    result = watch(fake, request(alarm_names=["app-green-any"], target_group=None))
    assert result["breached"] is True
    assert result["reason"] == "alarm app-green-any is in ALARM"


def test_more_than_100_alarms_are_described_100_at_a_time(clock):
    names = [f"alarm-{n:03}" for n in range(250)]
    fake = FakeAWS(clock, alarms={name: ("OK", "") for name in names})
    result = watch(fake, request(alarm_names=names, target_group=None, duration=0))
    assert [len(kwargs["AlarmNames"]) for name, kwargs in fake.calls if name == "describe_alarms"] == [100, 100, 50]
    assert list(result["alarms"]) == names


@pytest.mark.parametrize("call_time", [0.0, 0.3, 2.0, 7.0])
@pytest.mark.parametrize(("duration", "interval"), [(0, 1), (3, 1), (7, 5), (60, 5), (10, 3), (1, 10), (30, 1)])
def test_the_watch_is_bounded(clock, duration, interval, call_time):
    fake = FakeAWS(clock)
    fake.call_time = call_time
    result = watch(fake, request(duration=duration, interval=interval))
    assert result["breached"] is False
    # never more looks than one at once, one per interval and one at the end
    assert result["checks"] <= 1 + math.ceil(duration / interval)
    # never longer than the duration plus one interval and one look (a look is two calls here)
    look_time = 2 * call_time
    assert result["elapsed"] <= duration + interval + look_time + 1e-9
    # and it watched the whole duration
    assert result["elapsed"] >= duration
    # the n-th look never starts before its slot
    assert all(t >= min(n * interval, duration) for n, t in enumerate(fake.look_times))
    if call_time == 0:
        assert result["checks"] == 1 + math.ceil(duration / interval)
        assert result["elapsed"] == duration


def test_looks_keep_their_schedule_when_calls_take_time(clock):
    fake = FakeAWS(clock)
    fake.call_time = 0.5  # a look (two calls) takes 1 s
    watch(fake, request(duration=20, interval=5))
    assert fake.look_times == [0.0, 5.0, 10.0, 15.0, 20.0]


# ---- the AWS wrappers ----


def test_describe_target_health_returns_none_for_a_missing_target_group():
    client = MagicMock()
    client.describe_target_health.side_effect = client_error("TargetGroupNotFound")
    assert elbv2_listeners.find_target_health(client, TG_ARN) is None
    client.describe_target_health.assert_called_once_with(aws_retry=True, TargetGroupArn=TG_ARN)
    client.describe_target_health.side_effect = client_error("AccessDenied")
    with pytest.raises(AnsibleAWSError, match="Failed to describe target health"):
        elbv2_listeners.find_target_health(client, TG_ARN)


def test_describe_alarms_wraps_errors():
    client = MagicMock()
    client.get_paginator.return_value.paginate.return_value.build_full_result.side_effect = client_error("AccessDenied")
    with pytest.raises(AnsibleAWSError, match="Failed to describe CloudWatch alarms"):
        mod.describe_alarms(client, [FIVE_XX])


def test_count_healthy_counts_only_the_healthy_state():
    states = ["healthy", "initial", "unhealthy", "draining", "healthy", "unused", "unavailable"]
    assert elbv2_listeners.count_healthy_targets([{"TargetHealth": {"State": s}} for s in states] + [{}]) == 2


# ---- main() on fake clients ----


class RetryingClient:
    """What module.client() returns with a retry_decorator: the retry wrapper over the fake."""

    def __init__(self, fake: FakeAWS, retry):
        self.fake = fake
        self.wrapper = RetryingBotoClientWrapper(self, retry)

    def __getattr__(self, name):
        method = getattr(self.fake, name)
        if name.startswith("describe_"):
            return lambda **kwargs: method(aws_retry=True, **kwargs)
        return method


def run_main(monkeypatch, capsys, args: dict, fake: FakeAWS, *, check_mode: bool = False, retrying: bool = False):
    def make(service, retry_decorator=None):
        assert service in ("cloudwatch", "elbv2")
        return RetryingClient(fake, retry_decorator).wrapper if retrying else fake

    factory = MagicMock(side_effect=make)
    monkeypatch.setattr(mod.AnsibleAWSModule, "client", factory)
    monkeypatch.setattr(mod, "Clock", lambda: fake.clock)
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out), factory


MAIN_ARGS = {"alarm_names": [FIVE_XX, HOSTS], "target_group": "app-green", "min_healthy": 2, "duration": 60}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"duration": -1}, "duration must be 0 or more seconds, not -1"),
        ({"interval": 0}, "interval must be at least 1 second, not 0"),
        ({"target_group": None}, "min_healthy needs target_group"),
        ({"min_healthy": 0}, "min_healthy must be at least 1, not 0"),
        ({"alarm_names": [], "target_group": None, "min_healthy": None}, "nothing to watch"),
        ({"duration": None}, "missing required arguments: duration"),
        ({"duration": "a minute"}, "duration"),
        ({"interval": "often"}, "interval"),
        ({"alarm_names": [""]}, "alarm_names[0] must be an alarm name"),
        ({"bogus": 1}, "Unsupported parameters"),
    ],
)
def test_main_rejects_bad_input_before_any_client(monkeypatch, capsys, clock, args, message):
    fake = FakeAWS(clock)
    merged = {k: v for k, v in dict(MAIN_ARGS, **args).items() if v is not None}
    result, factory = run_main(monkeypatch, capsys, merged, fake)
    assert result["failed"]
    assert message in result["msg"]
    factory.assert_not_called()
    assert fake.calls == []


def test_main_watches_without_breach(monkeypatch, capsys, clock):
    fake = FakeAWS(clock)
    result, factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, duration="30", min_healthy="2"), fake)
    assert result["changed"] is False
    assert result["breached"] is False
    assert result["checks"] == 7
    assert result["elapsed"] == 30.0
    assert result["target_group_arn"] == TG_ARN
    assert [call.args for call in factory.call_args_list] == [("cloudwatch",), ("elbv2",)]
    assert factory.call_args_list[0].kwargs["retry_decorator"] is mod.CLOUDWATCH_RETRY
    assert factory.call_args_list[1].kwargs["retry_decorator"] is elbv2_listeners.ELBV2_RETRY
    assert "failed" not in result


def test_main_returns_a_breach_without_failing(monkeypatch, capsys, clock):
    fake = FakeAWS(clock).at(3, set_alarm(HOSTS, "ALARM", "1 unhealthy host"))
    result, _factory = run_main(monkeypatch, capsys, MAIN_ARGS, fake)
    assert "failed" not in result
    assert result["breached"] is True
    assert result["reason"] == f"alarm {HOSTS} is in ALARM (1 unhealthy host)"
    assert result["checks"] == 2


@pytest.mark.parametrize("check_mode", [False, True])
def test_main_watches_in_check_mode_too(monkeypatch, capsys, clock, check_mode):
    fake = FakeAWS(clock)
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, duration=10), fake, check_mode=check_mode)
    assert result["checks"] == 3
    assert result["elapsed"] == 10.0
    assert set(fake.names()) == {"describe_target_groups", "describe_alarms", "describe_target_health"}


def test_main_fails_on_a_missing_alarm_before_watching(monkeypatch, capsys, clock):
    fake = FakeAWS(clock, alarms={FIVE_XX: ("OK", "")})
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, alarm_names=[FIVE_XX, "app-gren-5xx"]), fake)
    assert result["failed"]
    assert result["msg"] == "CloudWatch alarm(s) not found: app-gren-5xx. Nothing was watched (check alarm_names)."
    assert clock.sleeps == []


def test_main_fails_on_a_missing_target_group_before_any_look(monkeypatch, capsys, clock):
    fake = FakeAWS(clock)
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, target_group="app-gren"), fake)
    assert result["failed"]
    assert result["msg"] == "Target group app-gren not found. Nothing was watched (check target_group)."
    assert fake.names() == ["describe_target_groups"]


def test_main_reports_aws_errors(monkeypatch, capsys, clock):
    fake = FakeAWS(clock)
    fake.errors = {"describe_alarms": "AccessDenied"}
    result, _factory = run_main(monkeypatch, capsys, MAIN_ARGS, fake)
    assert result["failed"]
    assert result["msg"].startswith("Failed to describe CloudWatch alarms")
    assert result["error"]["code"] == "AccessDenied"


def test_main_retries_throttling(monkeypatch, capsys, clock):
    monkeypatch.setattr(cloud.time, "sleep", lambda _seconds: None)
    fake = FakeAWS(clock)
    fake.throttle = {"describe_target_groups": 2, "describe_alarms": 2, "describe_target_health": 1}
    result, _factory = run_main(monkeypatch, capsys, dict(MAIN_ARGS, duration=5), fake, retrying=True)
    assert result["breached"] is False, result
    assert result["checks"] == 2
    assert fake.names().count("describe_target_groups") == 3
    assert fake.names().count("describe_alarms") == 2 + 2
    assert fake.names().count("describe_target_health") == 1 + 2
