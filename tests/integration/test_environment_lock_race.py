"""environment_lock under real concurrency, against the local AWS API.

Threads race the module's own acquire() (one boto3 client each), for a free lock and for a stale one: exactly
one wins. Then two ansible-playbook processes run the same "swap" at once: one proceeds and the other fails
on the lock (or, told to wait, runs after it); the swap's writes are never interleaved, and the final weights
are those of one complete swap.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.ecs_production.platform.plugins.modules import environment_lock as el
from integration_playbooks import ansible_env, command, play

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOCK = "/race/prod/lock"
WEIGHTS = "/race/prod/weights"
RUNNERS = 8


def ssm_client(aws_api):
    session = boto3.session.Session()
    client = session.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=aws_api.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff())


@pytest.fixture(scope="module")
def warm_clients(aws_api):
    """One client per runner, each past its first (slow) call, so that the runners' calls really meet."""
    clients = [ssm_client(aws_api) for _runner in range(RUNNERS)]
    for client in clients:
        client.get_parameters_by_path(Path="/race")
    return clients


def race(warm_clients, owners):
    """Every owner calls acquire() at the same moment; returns {owner: Outcome}."""
    clients = dict(zip(owners, warm_clients, strict=True))
    barrier = threading.Barrier(len(owners))
    outcomes, errors = {}, []

    def run(owner):
        try:
            request = el.Request(name=LOCK, owner=owner, operation="swap", token=f"token-{owner}", stale_after=900)
            barrier.wait(timeout=30)
            outcomes[owner] = el.acquire(clients[owner], request, 0, 1, el.Clock())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return outcomes


def stored_names(client) -> list[str]:
    pages = client.get_paginator("get_parameters_by_path").paginate(Path="/race", Recursive=True)
    return sorted(p["Name"] for page in pages for p in page["Parameters"])


@pytest.mark.parametrize("round_", range(3))
def test_of_runs_started_at_once_exactly_one_acquires(aws_api, warm_clients, round_):
    aws_api.reset()
    outcomes = race(warm_clients, [f"run{n}" for n in range(RUNNERS)])

    winners = [owner for owner, outcome in outcomes.items() if outcome.status == el.ACQUIRED]
    assert len(winners) == 1, {owner: outcome.status for owner, outcome in outcomes.items()}
    (winner,) = winners
    for owner, outcome in outcomes.items():
        if owner != winner:
            assert outcome.status == el.HELD
            assert outcome.lock.owner == winner
    stored = json.loads(warm_clients[0].get_parameter(Name=LOCK)["Parameter"]["Value"])
    assert stored["owner"] == winner and stored["token"] == f"token-{winner}"


@pytest.mark.parametrize("round_", range(3))
def test_of_runs_finding_the_same_stale_lock_exactly_one_takes_it_over(aws_api, warm_clients, round_):
    aws_api.reset()
    ssm = warm_clients[0]
    stale = {
        "owner": "dead@ci",
        "operation": "deploy",
        "acquired_at": "2020-01-01T00:00:00.000+00:00",
        "expires_at": "2020-01-01T00:15:00.000+00:00",
        "token": "dead",
    }
    ssm.put_parameter(Name=LOCK, Value=json.dumps(stale), Type="String")
    outcomes = race(warm_clients, [f"run{n}" for n in range(RUNNERS)])

    winners = [owner for owner, outcome in outcomes.items() if outcome.status == el.ACQUIRED]
    assert len(winners) == 1, {owner: outcome.status for owner, outcome in outcomes.items()}
    (winner,) = winners
    # Exactly one run deleted the stale lock; the winner is that run or one whose write came right after.
    takers = {owner: [lock.owner for lock in outcome.taken_over] for owner, outcome in outcomes.items()}
    assert sorted(takers.values()) == [[]] * (RUNNERS - 1) + [["dead@ci"]], takers
    stored = json.loads(ssm.get_parameter(Name=LOCK)["Parameter"]["Value"])
    assert stored["owner"] == winner
    assert stored_names(ssm) == [LOCK]  # no claim left behind


# ---- two playbooks ------------------------------------------------------------------------------------

SWAP_PLAYBOOK = play(
    "Swap {{ run }}",
    """\
  tasks:
    - name: Swap under the lock
      block:
        - name: Take the lock
          ecs_production.platform.environment_lock:
            name: @LOCK@
            owner: "{{ run }}"
            operation: swap
            wait: "{{ lock_wait }}"
            wait_interval: 0.5
          register: lock

        - name: First half of the swap
          community.aws.ssm_parameter:
            name: @WEIGHTS@
            value: "{{ run }}: half"
            string_type: String

        - name: The swap takes a while
          ansible.builtin.pause:
            seconds: 3

        - name: Second half of the swap
          community.aws.ssm_parameter:
            name: @WEIGHTS@
            value: "{{ run }}: done"
            string_type: String
      always:
        - name: Release the lock
          ecs_production.platform.environment_lock:
            name: @LOCK@
            state: released
            token: "{{ lock.token }}"
          when: lock.acquired | default(false)
""".replace("@LOCK@", LOCK).replace("@WEIGHTS@", WEIGHTS),
)


def start_swap(aws_api, playbook: Path, run: str, wait: int) -> subprocess.Popen:
    return subprocess.Popen(
        command(playbook, aws_api.endpoint_url, {"run": run, "lock_wait": wait}),
        cwd=REPO,
        env=ansible_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_two_swaps(aws_api, tmp_path: Path, wait: int) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """Both swaps started at once; returns {run: (exit code, output)} and the weights' history, in order."""
    aws_api.reset()
    playbook = tmp_path / "swap.yml"
    playbook.write_text(SWAP_PLAYBOOK)
    processes = {run: start_swap(aws_api, playbook, run, wait) for run in ("blue-run", "green-run")}
    results = {}
    for run, process in processes.items():
        output, _ = process.communicate(timeout=300)
        results[run] = (process.returncode, output)
    ssm = aws_api.client("ssm")
    history = ssm.get_paginator("get_parameter_history").paginate(Name=WEIGHTS).build_full_result()["Parameters"]
    assert not stored_names(ssm) or stored_names(ssm) == [WEIGHTS]  # lock released, no claim left
    return results, [entry["Value"] for entry in sorted(history, key=lambda entry: entry["Version"])]


@pytest.mark.slow
def test_two_swaps_at_once_one_proceeds_the_other_fails_on_the_lock(aws_api, tmp_path):
    results, history = run_two_swaps(aws_api, tmp_path, wait=0)

    succeeded = [run for run, (code, _output) in results.items() if code == 0]
    assert len(succeeded) == 1, {run: output[-3000:] for run, (_code, output) in results.items()}
    (winner,) = succeeded
    (loser,) = set(results) - {winner}
    assert f"is held by {winner} (swap)" in results[loser][1]
    assert history == [f"{winner}: half", f"{winner}: done"]


@pytest.mark.slow
def test_two_swaps_at_once_with_wait_run_one_after_the_other(aws_api, tmp_path):
    results, history = run_two_swaps(aws_api, tmp_path, wait=60)

    outputs = {run: output[-3000:] for run, (_code, output) in results.items()}
    assert all(code == 0 for code, _output in results.values()), outputs
    first = history[0].split(":")[0]
    second = ({"blue-run", "green-run"} - {first}).pop()
    assert history == [f"{first}: half", f"{first}: done", f"{second}: half", f"{second}: done"]
