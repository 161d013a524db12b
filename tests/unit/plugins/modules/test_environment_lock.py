"""Unit tests for ecs_production.platform.environment_lock: the lock protocol against an in-memory SSM
that can interleave another run's calls between ours, the messages, check mode, and main()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.ecs_production.platform.plugins.module_utils import lock as lock_values
from ansible_collections.ecs_production.platform.plugins.module_utils import process
from ansible_collections.ecs_production.platform.plugins.modules import environment_lock as el

NAME = "/app/prod/lock"
START = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)


def client_error(code: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}}, operation)


class FakeClock:
    def __init__(self, now: datetime = START):
        self._now = now
        self._mono = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class FakeSSM:
    """SSM Parameter Store in memory: create-if-absent, read, delete. `hooks[(operation, name)]` is a list
    of callables run (once each, in order) just before that call, to play another run's calls in between."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.parameters: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.hooks: dict[tuple[str, str], list] = {}

    def on(self, operation: str, name: str, hook) -> None:
        self.hooks.setdefault((operation, name), []).append(hook)

    def _hook(self, operation: str, name: str) -> None:
        self.calls.append((operation, name))
        pending = self.hooks.get((operation, name))
        if pending:
            pending.pop(0)()

    def store(self, name: str, value: str, modified: datetime | None = None) -> None:
        version = self.parameters.get(name, {}).get("Version", 0) + 1
        self.parameters[name] = {
            "Name": name,
            "Type": "String",
            "Value": value,
            "Version": version,
            "LastModifiedDate": modified or self.clock.now(),
        }

    def put_parameter(self, aws_retry=False, Overwrite=False, **params):
        self._hook("overwrite" if Overwrite else "put", params["Name"])
        assert aws_retry
        assert params["Type"] == "String"
        if Overwrite:
            # Only a renewal overwrites, and only the lock itself (never a claim).
            assert ".claim-" not in params["Name"]
            self.store(params["Name"], params["Value"])
            return {"Version": self.parameters[params["Name"]]["Version"], "Tier": "Standard"}
        if params["Name"] in self.parameters:
            raise client_error("ParameterAlreadyExists", "PutParameter")
        self.store(params["Name"], params["Value"])
        return {"Version": 1, "Tier": "Standard"}

    def get_parameter(self, aws_retry=False, Name=None):
        self._hook("get", Name)
        assert aws_retry
        if Name not in self.parameters:
            raise client_error("ParameterNotFound", "GetParameter")
        return {"Parameter": dict(self.parameters[Name])}

    def delete_parameter(self, aws_retry=False, Name=None):
        self._hook("delete", Name)
        assert aws_retry
        if Name not in self.parameters:
            raise client_error("ParameterNotFound", "DeleteParameter")
        del self.parameters[Name]
        return {}

    def lock(self) -> dict | None:
        parameter = self.parameters.get(NAME)
        return json.loads(parameter["Value"]) if parameter else None

    def claims(self) -> list[str]:
        return [name for name in self.parameters if ".claim-" in name]


def lock_value(owner="bob@ci", operation="deploy v41", acquired=START, stale_after=900, held_with="b0b"):
    return json.dumps(
        {
            "owner": owner,
            "operation": operation,
            "acquired_at": el.isoformat(acquired),
            "expires_at": el.isoformat(acquired + timedelta(seconds=stale_after)),
            "token": held_with,
        }
    )


def request(**overrides) -> el.Request:
    params = dict(name=NAME, owner="alice@laptop", operation="swap to green", token="a11ce", stale_after=900)
    params.update(overrides)
    return el.Request(**params)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ssm(clock):
    return FakeSSM(clock)


class Failed(Exception):
    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = {"token": None, "force": False, "wait": 0.0}
        self.params.update(params)
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, message):
        self.warnings.append(message)

    def fail_json(self, msg, **result):
        raise Failed(msg, **result)


# ---- values ---------------------------------------------------------------------------------------


def test_the_lock_value_records_owner_operation_times_and_token():
    lock = el.new_lock(request(stale_after=60), START)
    assert json.loads(lock.raw) == {
        "owner": "alice@laptop",
        "operation": "swap to green",
        "acquired_at": "2025-01-31T12:00:00.000+00:00",
        "expires_at": "2025-01-31T12:01:00.000+00:00",
        "token": "a11ce",
    }
    parsed = lock_values.parse_lock({"Value": lock.raw, "LastModifiedDate": START}, 900)
    assert (parsed.owner, parsed.token, parsed.expires_at) == ("alice@laptop", "a11ce", START + timedelta(seconds=60))


def test_a_value_not_written_by_the_module_is_held_by_an_unknown_owner_until_stale():
    parsed = lock_values.parse_lock({"Value": "locked by hand", "LastModifiedDate": START}, 300)
    assert parsed.owner.startswith("unknown") and parsed.token is None
    assert not parsed.is_stale(START + timedelta(seconds=299))
    assert parsed.is_stale(START + timedelta(seconds=300))


def test_the_holders_own_expiry_decides_staleness_not_the_readers_stale_after():
    parsed = lock_values.parse_lock({"Value": lock_value(stale_after=3600), "LastModifiedDate": START}, 60)
    assert not parsed.is_stale(START + timedelta(seconds=3599))
    assert parsed.is_stale(START + timedelta(seconds=3600))


def test_a_claim_is_named_after_the_exact_lock_value():
    one = lock_values.parse_lock({"Value": lock_value(held_with="one"), "LastModifiedDate": START}, 900)
    two = lock_values.parse_lock({"Value": lock_value(held_with="two"), "LastModifiedDate": START}, 900)
    assert el.claim_name(NAME, one).startswith(f"{NAME}.claim-")
    assert el.claim_name(NAME, one) != el.claim_name(NAME, two)
    assert len(el.claim_name(NAME, one)) == len(NAME) + 39


# ---- acquiring --------------------------------------------------------------------------------------


def test_a_free_lock_is_acquired_with_one_conditional_write(ssm, clock):
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.ACQUIRED and not outcome.taken_over
    assert ssm.lock()["token"] == "a11ce" and ssm.lock()["owner"] == "alice@laptop"
    assert [c for c in ssm.calls if c[0] != "get"] == [("put", NAME)]
    assert ssm.parameters[NAME]["Type"] == "String"


def test_a_held_lock_is_not_taken_and_nothing_is_written(ssm, clock):
    ssm.store(NAME, lock_value())
    clock.advance(42)
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.HELD
    assert outcome.lock.owner == "bob@ci" and outcome.lock.operation == "deploy v41"
    assert ssm.lock()["token"] == "b0b"
    assert ("delete", NAME) not in ssm.calls and not ssm.claims()


def test_the_second_writer_of_a_race_gets_parameter_already_exists_and_sees_the_holder(ssm, clock):
    # The other run writes between our decision to write and our write: our create-if-absent fails.
    ssm.on("put", NAME, lambda: ssm.store(NAME, lock_value()))
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.HELD and outcome.lock.owner == "bob@ci"
    assert ssm.lock()["token"] == "b0b"


def test_a_write_that_succeeded_on_a_non_atomic_backend_still_loses_to_the_value_read_back(ssm, clock):
    # Both creates "succeed" and the other lands last, as an emulator without atomic create-if-absent allows.
    ssm.on("get", NAME, lambda: ssm.store(NAME, lock_value()))
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.HELD and outcome.lock.token == "b0b"


def test_a_lock_released_between_the_failed_write_and_the_read_is_tried_again(ssm, clock):
    ssm.store(NAME, lock_value())
    ssm.on("get", NAME, lambda: ssm.parameters.pop(NAME))
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.ACQUIRED
    assert ssm.lock()["token"] == "a11ce"


def test_a_stale_lock_is_taken_over_through_a_claim_that_is_removed_afterwards(ssm, clock):
    ssm.store(NAME, lock_value(stale_after=900))
    clock.advance(901)
    stale = lock_values.parse_lock(ssm.parameters[NAME], 900)
    outcome = el.acquire(ssm, request(), 0, 5, clock)

    assert outcome.status == el.ACQUIRED
    assert [lock.owner for lock in outcome.taken_over] == ["bob@ci"]
    assert ssm.lock()["token"] == "a11ce"
    claim = el.claim_name(NAME, stale)
    writes = [c for c in ssm.calls if c[0] != "get"]
    assert writes == [("put", NAME), ("put", claim), ("delete", NAME), ("delete", claim), ("put", NAME)]
    assert not ssm.claims()


def test_a_lock_just_short_of_stale_is_not_taken_over(ssm, clock):
    ssm.store(NAME, lock_value(stale_after=900))
    clock.advance(899)
    assert el.acquire(ssm, request(), 0, 5, clock).status == el.HELD


def test_of_two_runs_taking_over_the_same_stale_lock_only_the_first_to_claim_deletes_it(ssm, clock):
    ssm.store(NAME, lock_value(stale_after=900))
    clock.advance(1000)
    stale = lock_values.parse_lock(ssm.parameters[NAME], 900)
    claim = el.claim_name(NAME, stale)

    def other_run_takes_over_completely():
        other = el.acquire(ssm, request(owner="carol@ci", token="ca401"), 0, 5, clock)
        assert other.status == el.ACQUIRED and other.taken_over

    # We read the stale lock; before our claim, the other run claims, deletes, writes its lock and
    # drops its claim. Our claim then succeeds, but the re-read shows the lock is no longer the stale one.
    ssm.on("put", claim, other_run_takes_over_completely)
    outcome = el.acquire(ssm, request(), 0, 5, clock)

    assert outcome.status == el.HELD and outcome.lock.owner == "carol@ci"
    assert not outcome.taken_over
    assert ssm.lock()["token"] == "ca401"
    assert not ssm.claims()


def test_a_run_that_finds_the_claim_taken_does_not_delete_the_lock(ssm, clock):
    ssm.store(NAME, lock_value(stale_after=900))
    clock.advance(1000)
    stale = lock_values.parse_lock(ssm.parameters[NAME], 900)
    ssm.store(el.claim_name(NAME, stale), '{"owner": "carol@ci"}')  # another run is mid-takeover

    outcome = el.acquire(ssm, request(), 0, 5, clock)

    assert outcome.status == el.HELD and outcome.lock.token == "b0b"
    assert ("delete", NAME) not in ssm.calls
    message = el.held_message(request(), outcome.lock, clock.now(), 0)
    assert "another run is taking it over" in message


def test_the_same_token_finds_the_lock_already_held_without_a_change(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce"))
    outcome = el.acquire(ssm, request(token="a11ce", token_given=True), 0, 5, clock)
    assert outcome.status == el.ALREADY_HELD
    assert [c for c in ssm.calls if c[0] != "get"] == [("put", NAME)]


def test_a_random_token_found_in_place_was_written_by_this_run_whose_answer_was_lost(ssm, clock):
    ssm.on("put", NAME, lambda: ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce")))
    outcome = el.acquire(ssm, request(token="a11ce"), 0, 5, clock)
    assert outcome.status == el.ACQUIRED


def test_waiting_is_bounded_by_wait_with_jittered_sleeps(ssm, clock):
    ssm.store(NAME, lock_value())
    outcome = el.acquire(ssm, request(), 10, 2, clock)
    assert outcome.status == el.HELD
    assert sum(clock.sleeps) == pytest.approx(10)
    assert all(1 <= s <= 3 for s in clock.sleeps[:-1])
    assert 4 <= len(clock.sleeps) <= 11
    assert outcome.waited == pytest.approx(10)


def test_a_waiting_run_gets_the_lock_once_the_holder_releases_it(ssm, clock):
    ssm.store(NAME, lock_value())
    real_sleep = clock.sleep

    def sleep_then_release(seconds):
        real_sleep(seconds)
        if sum(clock.sleeps) > 6:
            ssm.parameters.pop(NAME, None)

    clock.sleep = sleep_then_release
    outcome = el.acquire(ssm, request(), 60, 2, clock)
    assert outcome.status == el.ACQUIRED
    assert 6 < sum(clock.sleeps) < 12
    assert ssm.lock()["token"] == "a11ce"


def test_wait_zero_tries_once_and_never_sleeps(ssm, clock):
    ssm.store(NAME, lock_value())
    assert el.acquire(ssm, request(), 0, 5, clock).status == el.HELD
    assert clock.sleeps == []


# ---- results and messages -------------------------------------------------------------------------


def test_a_held_lock_fails_naming_holder_operation_age_and_how_to_break_it(ssm, clock):
    ssm.store(NAME, lock_value())
    clock.advance(185)
    module = FakeModule(wait=2.0)
    outcome = el.acquire(ssm, request(), 2, 1, clock)
    with pytest.raises(Failed) as failure:
        el.acquire_result(module, request(), outcome, clock.now())
    message = failure.value.msg
    assert "is held by bob@ci (deploy v41)" in message
    assert "acquired 3 min 7 s ago at 2025-01-31T12:00:00.000+00:00" in message  # 185 s + 2 s waited
    assert "goes stale at 2025-01-31T12:15:00.000+00:00" in message
    assert "Gave up after waiting 2 s" in message
    assert "state=released and force=true" in message
    assert failure.value.result["acquired"] is False
    assert failure.value.result["holder"]["owner"] == "bob@ci"
    assert failure.value.result["holder"]["age_seconds"] == 187
    assert "token" not in failure.value.result["holder"]


def test_the_acquired_result_has_the_token_and_the_diff(ssm, clock):
    module = FakeModule()
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    result = el.acquire_result(module, request(), outcome, clock.now())
    assert result["changed"] and result["acquired"] and result["token"] == "a11ce"
    assert result["stale_taken_over"] is False and "holder" not in result
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["owner"] == "alice@laptop"
    assert result["msg"] == "Acquired environment lock /app/prod/lock for alice@laptop (swap to green)."


def test_a_takeover_warns_naming_the_previous_holder(ssm, clock):
    ssm.store(NAME, lock_value())
    clock.advance(3600)
    module = FakeModule()
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    result = el.acquire_result(module, request(), outcome, clock.now())
    assert result["changed"] and result["stale_taken_over"]
    assert result["holder"]["owner"] == "bob@ci" and result["holder"]["stale"]
    assert result["diff"]["before"]["owner"] == "bob@ci"
    (warning,) = module.warnings
    assert "Took over the stale environment lock /app/prod/lock held by bob@ci (deploy v41)" in warning
    assert "60 min 0 s ago" in warning


# ---- check mode -------------------------------------------------------------------------------------


def test_check_mode_would_acquire_a_free_lock_without_writing(ssm, clock):
    module = FakeModule(check_mode=True)
    result = el.acquire_result(module, request(), el.plan_acquire(ssm, request(), clock), clock.now())
    assert result["changed"] and result["acquired"] and "token" not in result
    assert result["msg"].startswith("Would acquire")
    assert ssm.calls == [("get", NAME)] and ssm.parameters == {}


def test_check_mode_reports_a_holder_without_failing(ssm, clock):
    ssm.store(NAME, lock_value())
    module = FakeModule(check_mode=True, wait=30.0)
    result = el.acquire_result(module, request(), el.plan_acquire(ssm, request(), clock), clock.now())
    assert not result["changed"] and not result["acquired"]
    assert result["holder"]["owner"] == "bob@ci"
    assert "would wait up to 30 s and fail" in module.warnings[0]
    assert ssm.calls == [("get", NAME)]


def test_check_mode_would_take_over_a_stale_lock(ssm, clock):
    ssm.store(NAME, lock_value())
    clock.advance(901)
    module = FakeModule(check_mode=True)
    result = el.acquire_result(module, request(), el.plan_acquire(ssm, request(), clock), clock.now())
    assert result["changed"] and result["acquired"] and result["stale_taken_over"]
    assert module.warnings[0].startswith("Would take over the stale environment lock")
    assert ssm.calls == [("get", NAME)] and ssm.lock()["token"] == "b0b"


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_releasing_with_the_holders_token(ssm, clock, check_mode):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce"))
    before = lock_values.parse_lock(ssm.parameters[NAME], 900).summary()
    module = FakeModule(check_mode=check_mode, token="a11ce")
    result = el.release(module, ssm, request(), clock)
    assert result["changed"] and result["holder"]["owner"] == "alice@laptop"
    assert result["diff"] == {"before": before, "after": {}}
    if check_mode:
        assert ssm.lock()["token"] == "a11ce" and result["msg"].startswith("Would release")
    else:
        assert ssm.lock() is None and not ssm.claims()
        assert result["msg"] == "Released environment lock /app/prod/lock held by alice@laptop (deploy v41)."


@pytest.mark.parametrize("token", ["wrong", None], ids=["wrong-token", "no-token"])
@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_releasing_another_runs_lock_fails_and_keeps_it(ssm, clock, token, check_mode):
    ssm.store(NAME, lock_value())
    module = FakeModule(check_mode=check_mode, token=token)
    with pytest.raises(Failed) as failure:
        el.release(module, ssm, request(), clock)
    assert "held by bob@ci (deploy v41)" in failure.value.msg
    assert "only the run holding it releases it" in failure.value.msg
    assert "force=true" in failure.value.msg
    assert ssm.lock()["token"] == "b0b"


def test_force_breaks_another_runs_lock_and_any_claim_left_behind(ssm, clock):
    ssm.store(NAME, lock_value())
    ssm.store(el.claim_name(NAME, lock_values.parse_lock(ssm.parameters[NAME], 900)), "{}")
    module = FakeModule(force=True)
    result = el.release(module, ssm, request(), clock)
    assert result["changed"] and ssm.parameters == {}
    assert "Breaking environment lock /app/prod/lock held by bob@ci (deploy v41)" in module.warnings[0]


def test_releasing_an_absent_lock_is_no_change(ssm, clock):
    result = el.release(FakeModule(token="a11ce"), ssm, request(), clock)
    assert not result["changed"] and "not held" in result["msg"]


def test_releasing_a_lock_that_is_being_taken_over_fails_clearly(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=60))
    clock.advance(120)
    ssm.store(el.claim_name(NAME, lock_values.parse_lock(ssm.parameters[NAME], 900)), "{}")
    with pytest.raises(Failed, match="went stale at .* another run is taking it over"):
        el.release(FakeModule(token="a11ce"), ssm, request(), clock)
    assert ssm.lock()["token"] == "a11ce"


def test_a_lock_taken_over_and_released_while_releasing_is_no_change(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce"))
    lock = lock_values.parse_lock(ssm.parameters[NAME], 900)
    ssm.on("put", el.claim_name(NAME, lock), lambda: ssm.parameters.pop(NAME))
    result = el.release(FakeModule(token="a11ce"), ssm, request(), clock)
    assert not result["changed"] and "released by another run" in result["msg"]


# ---- renewing ------------------------------------------------------------------------------------------


def renew_request(**overrides) -> el.Request:
    return request(**{"stale_after": 300, **overrides})


def test_the_holder_renews_its_lock_for_stale_after_from_now_keeping_everything_else(ssm, clock):
    ssm.store(NAME, held_by(4242, "777", host="deploy-host", acquired=START).replace('"b0b"', '"a11ce"'))
    clock.advance(250)
    module = FakeModule(token="a11ce")
    result = el.renew(module, ssm, renew_request(), clock)
    stored = ssm.lock()
    assert stored["expires_at"] == el.isoformat(START + timedelta(seconds=250 + 300))
    assert stored["renewed_at"] == el.isoformat(START + timedelta(seconds=250))
    assert stored["acquired_at"] == el.isoformat(START) and stored["token"] == "a11ce"
    assert (stored["owner"], stored["operation"], stored["pid"], stored["host"]) == (
        "bob@ci",
        "deploy v41",
        4242,
        "deploy-host",
    )
    assert result["changed"] and result["renewed"] and result["acquired"]
    assert result["previous_expires_at"] == el.isoformat(START + timedelta(seconds=3600))
    assert result["diff"]["before"]["expires_at"] != result["diff"]["after"]["expires_at"]
    assert "Renewed environment lock /app/prod/lock held by bob@ci (deploy v41) until" in result["msg"]
    # Written through the claim a takeover needs, which is gone afterwards; the write itself overwrites.
    writes = [call for call in ssm.calls if call[0] != "get"]
    assert writes[0][0] == "put" and ".claim-" in writes[0][1]
    assert ("overwrite", NAME) in writes and ssm.claims() == [] and module.warnings == []


def test_a_renewed_lock_is_no_longer_stale_for_another_run(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=300))
    clock.advance(200)
    el.renew(FakeModule(token="a11ce"), ssm, renew_request(), clock)
    clock.advance(200)  # 400 s after acquiring: stale without the renewal, fresh with it
    outcome = el.acquire(ssm, request(token="c0ffee", owner="carol@ci"), 0, 5, clock)
    assert outcome.status == el.HELD and outcome.lock.token == "a11ce"
    assert not outcome.taken_over


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_another_run_cannot_renew_and_is_told_who_holds_the_lock(ssm, clock, check_mode):
    ssm.store(NAME, lock_value())
    before = dict(ssm.parameters[NAME])
    module = FakeModule(check_mode=check_mode, token="a11ce")
    with pytest.raises(Failed) as failure:
        el.renew(module, ssm, renew_request(), clock)
    assert "held by bob@ci (deploy v41)" in failure.value.msg
    assert "only the run holding the lock can renew it" in failure.value.msg
    assert failure.value.result["holder"]["owner"] == "bob@ci" and not failure.value.result["renewed"]
    assert ssm.parameters[NAME] == before and ssm.claims() == []


def test_renewing_a_lock_that_is_gone_fails_saying_it_was_lost(ssm, clock):
    with pytest.raises(Failed, match="is not held any more: this run cannot renew it"):
        el.renew(FakeModule(token="a11ce"), ssm, renew_request(), clock)
    assert ssm.parameters == {}


def test_a_stale_lock_still_held_is_renewed_with_a_warning(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=60))
    clock.advance(90)
    module = FakeModule(token="a11ce")
    result = el.renew(module, ssm, renew_request(), clock)
    assert result["renewed"] and ssm.lock()["expires_at"] == el.isoformat(START + timedelta(seconds=390))
    (warning,) = module.warnings
    assert "had gone stale" in warning and "30 s ago" in warning


def test_check_mode_would_renew_without_writing(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce"))
    before = dict(ssm.parameters[NAME])
    result = el.renew(FakeModule(check_mode=True, token="a11ce"), ssm, renew_request(), clock)
    assert result["changed"] and result["msg"].startswith("Would renew")
    assert ssm.parameters == {NAME: before} and ssm.calls == [("get", NAME)]


def test_a_renewal_never_overwrites_a_lock_another_run_is_taking_over(ssm, clock):
    # The lock went stale; another run claimed it first (to delete it) just before our claim.
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=60))
    clock.advance(120)
    stale = lock_values.parse_lock(ssm.parameters[NAME], 900)
    claim = el.claim_name(NAME, stale)
    ssm.on("put", claim, lambda: ssm.store(claim, "{}"))
    with pytest.raises(Failed, match="another run is taking it over right now: this run lost the lock"):
        el.renew(FakeModule(token="a11ce"), ssm, renew_request(), clock)
    assert ssm.lock()["expires_at"] == el.isoformat(START + timedelta(seconds=60))
    assert ("overwrite", NAME) not in ssm.calls


def test_a_lock_taken_over_between_the_read_and_the_claim_is_not_renewed(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=60))
    clock.advance(120)
    stale = lock_values.parse_lock(ssm.parameters[NAME], 900)
    # Another run deletes the stale lock and writes its own before our claim: our re-read sees it.
    ssm.on("put", el.claim_name(NAME, stale), lambda: ssm.store(NAME, lock_value(owner="carol@ci", held_with="ca401")))
    with pytest.raises(Failed) as failure:
        el.renew(FakeModule(token="a11ce"), ssm, renew_request(), clock)
    assert "held by carol@ci (deploy v41)" in failure.value.msg and "Nothing was renewed" in failure.value.msg
    assert ssm.lock()["token"] == "ca401" and ssm.claims() == []
    assert ("overwrite", NAME) not in ssm.calls


def test_a_takeover_that_comes_while_the_lock_is_renewed_finds_it_fresh(ssm, clock):
    ssm.store(NAME, lock_value(owner="alice@laptop", held_with="a11ce", stale_after=60))
    clock.advance(120)
    outcomes = []

    # Another run tries to take the stale lock over while our renewal holds the claim.
    def other_run():
        outcomes.append(el.attempt(ssm, request(token="ca401", owner="carol@ci"), clock))

    ssm.on("overwrite", NAME, other_run)
    el.renew(FakeModule(token="a11ce"), ssm, renew_request(), clock)
    (outcome,) = outcomes
    assert outcome.status == el.HELD and not outcome.taken_over
    assert ssm.lock()["token"] == "a11ce" and ssm.claims() == []


def test_main_renews_for_the_holder_only_and_needs_a_token(main_ssm, capsys):
    code, first = run_main(capsys, owner="alice@laptop", operation="swap to green", stale_after=600)
    assert code == 0
    code, renewed = run_main(capsys, state="renewed", token=first["token"], stale_after=900, _ansible_diff=True)
    assert code == 0 and renewed["changed"] and renewed["renewed"]
    assert renewed["expires_at"] > first["expires_at"] and renewed["acquired_at"] == first["acquired_at"]
    assert renewed["diff"]["after"]["expires_at"] == renewed["expires_at"]
    code, refused = run_main(capsys, state="renewed", token="not-the-token")
    assert code == 1 and "held by alice@laptop (swap to green)" in refused["msg"]
    made = len(main_ssm.made)
    code, no_token = run_main(capsys, state="renewed")
    assert code == 1 and "state=renewed needs the token" in no_token["msg"]
    assert len(main_ssm.made) == made  # refused before any AWS client


# ---- main() -------------------------------------------------------------------------------------------


@pytest.fixture
def main_ssm(monkeypatch, ssm):
    """main() gets the in-memory SSM; the real clock runs, so locks are fresh."""
    made = []

    def client(_self, service, retry_decorator=None, **_kwargs):
        made.append((service, retry_decorator))
        return ssm

    monkeypatch.setattr(AnsibleAWSModule, "client", client)
    ssm.made = made
    ssm.clock = el.Clock()
    return ssm


def run_main(capsys, **args):
    args.setdefault("name", NAME)
    args.setdefault("region", "us-east-1")
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        el.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_main_acquires_then_blocks_a_second_owner_then_releases(main_ssm, capsys):
    code, first = run_main(capsys, owner="alice@laptop", operation="swap to green", _ansible_diff=True)
    assert code == 0 and first["changed"] and first["acquired"]
    assert len(first["token"]) == 32
    assert first["diff"]["after"]["operation"] == "swap to green"
    assert main_ssm.made[0][0] == "ssm" and main_ssm.made[0][1] is not None

    code, second = run_main(capsys, owner="bob@ci", operation="rollback")
    assert code == 1 and second["failed"] and not second["acquired"]
    assert "held by alice@laptop (swap to green)" in second["msg"]
    assert second["holder"]["owner"] == "alice@laptop"

    code, wrong = run_main(capsys, state="released", token="not-the-token")
    assert code == 1 and "under another token" in wrong["msg"]

    code, released = run_main(capsys, state="released", token=first["token"])
    assert code == 0 and released["changed"]
    code, again = run_main(capsys, state="released", token=first["token"])
    assert code == 0 and not again["changed"]
    assert main_ssm.parameters == {}


def test_main_in_check_mode_writes_nothing(main_ssm, capsys):
    code, result = run_main(capsys, _ansible_check_mode=True, operation="deploy")
    assert code == 0 and result["changed"] and result["acquired"] and "token" not in result
    assert "diff" not in result
    assert main_ssm.parameters == {}


def test_main_default_owner_is_user_at_host(main_ssm, capsys):
    _code, result = run_main(capsys)
    assert "@" in result["owner"] and result["operation"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"stale_after": 0}, "stale_after must be at least 1 second"),
        ({"wait": -1}, "wait must not be negative"),
        ({"wait_interval": 0}, "wait_interval must be more than 0"),
        ({"token": "x" * 200}, "token must have between 1 and 128 characters"),
        ({"name": "/x" * 600}, "name must have at most 960 characters"),
        ({"operation": "x" * 5000}, "more than the 4096 SSM allows"),
        ({"state": "held"}, "value of state must be one of"),
    ],
)
def test_main_refuses_bad_input_before_any_aws_client(main_ssm, capsys, args, message):
    code, result = run_main(capsys, **args)
    assert code == 1 and message in result["msg"]
    assert main_ssm.made == []


def test_main_reports_aws_errors(main_ssm, capsys):
    def denied(**_kwargs):
        raise client_error("AccessDeniedException", "PutParameter")

    main_ssm.put_parameter = denied
    code, result = run_main(capsys)
    assert code == 1 and "Failed to create parameter" in result["msg"] and "AccessDeniedException" in result["msg"]


# ---- the holder's process: a dead run on this host cannot hold the lock ----------------------------


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def held_by(pid, started, host=None, acquired=START):
    value = json.loads(lock_value(acquired=acquired, stale_after=3600))
    value.update(host=host or process.this_host(), pid=pid, started=started)
    return json.dumps(value)


def me_started() -> str:
    return process.start_time(os.getpid())


def test_the_lock_records_the_holders_host_process_and_start_time():
    lock = el.new_lock(request(holder_pid=4242, holder_started="777"), START)
    value = json.loads(lock.raw)
    assert (value["host"], value["pid"], value["started"]) == (process.this_host(), 4242, "777")
    parsed = lock_values.parse_lock({"Value": lock.raw}, 900)
    assert (parsed.host, parsed.pid, parsed.started) == (process.this_host(), 4242, "777")
    assert parsed.summary()["pid"] == 4242
    # Without a process, nothing is recorded (the module's own process ends with the task).
    assert "pid" not in json.loads(el.new_lock(request(), START).raw)


def test_a_dead_holder_on_this_host_is_taken_over_at_once_through_a_claim(ssm, clock):
    ssm.store(NAME, held_by(a_dead_pid(), "12345"))
    module = FakeModule()
    outcome = el.acquire(ssm, request(holder_pid=os.getpid(), holder_started=me_started()), 120, 5, clock)
    result = el.acquire_result(module, request(), outcome, clock.now())
    assert result["changed"] and result["acquired"] and clock.sleeps == []
    assert result["dead_holder_taken_over"] and not result["stale_taken_over"]
    assert result["holder"]["holder_gone"] and not result["holder"]["stale"]
    assert ssm.lock()["token"] == "a11ce" and ssm.lock()["pid"] == os.getpid()
    assert ssm.claims() == []
    assert any(operation == "put" and ".claim-" in name for operation, name in ssm.calls)
    (warning,) = module.warnings
    assert "Took over the environment lock /app/prod/lock held by bob@ci (deploy v41)" in warning
    assert f"on {process.this_host()} is gone" in warning
    assert "taking over the lock of bob@ci (deploy v41), whose process" in result["msg"]


def test_a_reused_process_id_counts_as_a_dead_holder(ssm, clock):
    earlier = str(int(me_started()) - 1)  # this pid, but a process that started before this one
    ssm.store(NAME, held_by(os.getpid(), earlier))
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.ACQUIRED and outcome.reason(outcome.taken_over[0]) == el.DEAD


def test_a_live_holder_on_this_host_is_waited_for_then_refused(ssm, clock):
    ssm.store(NAME, held_by(os.getpid(), me_started()))
    module = FakeModule(wait=10.0)
    outcome = el.acquire(ssm, request(), 10, 5, clock)
    assert outcome.status == el.HELD and clock.sleeps
    with pytest.raises(Failed) as failure:
        el.acquire_result(module, request(), outcome, clock.now())
    message = failure.value.msg
    assert f"by process {os.getpid()} on {process.this_host()}, which is still running" in message
    assert failure.value.result["holder"]["holder_gone"] is False
    assert ssm.claims() == [] and json.loads(ssm.parameters[NAME]["Value"])["pid"] == os.getpid()


def test_a_holder_on_another_host_is_refused_even_if_the_pid_is_free_here(ssm, clock):
    ssm.store(NAME, held_by(a_dead_pid(), "1", host="another-host"))
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    assert outcome.status == el.HELD and outcome.taken_over == []
    message = el.held_message(request(), outcome.lock, clock.now(), 0)
    assert "another host: this run cannot tell whether it still runs" in message


def test_a_stale_lock_is_still_taken_over_as_stale_whatever_its_process(ssm, clock):
    ssm.store(NAME, held_by(os.getpid(), me_started(), host="another-host"))
    clock.advance(3600)
    module = FakeModule()
    outcome = el.acquire(ssm, request(), 0, 5, clock)
    result = el.acquire_result(module, request(), outcome, clock.now())
    assert result["stale_taken_over"] and not result["dead_holder_taken_over"]


def test_of_two_runs_finding_the_same_dead_holder_only_one_takes_the_lock(ssm, clock):
    ssm.store(NAME, held_by(a_dead_pid(), "12345"))
    bob = request(owner="bob@laptop", token="b0b2")
    # bob's whole attempt runs just before alice's claim: bob deletes the dead lock and writes his.
    ssm.on(
        "put",
        el.claim_name(NAME, lock_values.parse_lock(ssm.parameters[NAME], 900)),
        lambda: el.attempt(ssm, bob, clock),
    )
    outcome = el.attempt(ssm, request(), clock)
    assert outcome.status == el.HELD and outcome.lock.owner == "bob@laptop"
    assert ssm.lock()["token"] == "b0b2"


def test_check_mode_would_take_over_a_dead_holder(ssm, clock):
    ssm.store(NAME, held_by(a_dead_pid(), "12345"))
    module = FakeModule(check_mode=True)
    result = el.acquire_result(module, request(), el.plan_acquire(ssm, request(), clock), clock.now())
    assert result["acquired"] and result["dead_holder_taken_over"]
    assert module.warnings[0].startswith("Would take over the environment lock")
    assert ssm.calls == [("get", NAME)]


@pytest.mark.parametrize("advice", [None, "re-run with -e break_lock=true"])
def test_every_refusal_ends_with_how_to_break_the_lock(ssm, clock, advice):
    overrides = {"break_advice": advice} if advice else {}
    expected = advice or "release it with state=released and force=true"
    ssm.store(NAME, held_by(os.getpid(), me_started()))
    outcome = el.acquire(ssm, request(**overrides), 0, 5, clock)
    held = el.held_message(request(**overrides), outcome.lock, clock.now(), 0)
    nobody = el.held_message(request(**overrides), None, clock.now(), 0)
    module = FakeModule(token="wrong")
    with pytest.raises(Failed) as release_refused:
        el.release(module, ssm, request(**overrides), clock)
    for message in (held, nobody, release_refused.value.msg):
        assert message.endswith(
            f" Only if you know the holder is dead, break the lock: {expected}"
            " (see docs/runbooks/stuck-lock.md in the ecs_production.platform collection)."
        ), message


def test_main_records_the_holder_process_and_refuses_a_bad_pid(main_ssm, capsys):
    code, result = run_main(capsys, holder_pid=os.getpid(), holder_started=me_started(), holder_host="h1")
    assert code == 0 and result["acquired"]
    stored = json.loads(main_ssm.parameters[NAME]["Value"])
    assert (stored["host"], stored["pid"], stored["started"]) == ("h1", os.getpid(), me_started())
    code, result = run_main(capsys, holder_pid=0)
    assert code == 1 and "holder_pid must be a process id" in result["msg"]
