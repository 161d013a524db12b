"""Crash-resume: provision and teardown killed after sampled tasks, and the run after them completes.

A chain (``localcloud.crashpoints``) runs ``provision.yml`` on an empty account again and again, each
run killed once: with SIGKILL, or SIGINT as Ctrl-C sends it, alternately; after a task drawn at random
inside the next segment of the run (a role's consecutive tasks, from the one that takes the lock on) not
yet covered, plus a random delay of up to 0.6 s, so that some kills land while a module runs. After
every kill the account holds no duplicate of anything (by kind, against what a provision makes), the
database password, once generated, is never generated again, and no traffic was ever pointed at green;
a run interrupted with SIGINT (exit 99) left no lock (the lock_release callback released it as it
exited), and the run after a SIGKILL takes the dead run's lock over, saying so. Once, after the first
SIGKILL that left the lock held, the lock is made to name a holder that still runs (this test's process),
then one on another host: provision refuses both before touching anything, saying how to break the lock.
The run that meets no segment left completes and leaves exactly the platform, the first password kept.
Then a teardown chain kills a sample of teardown's segments the same way, and its last run leaves
nothing. The points tried are printed and written to ``tests/output/crash_points.json``.

The first teardown run, given ``-e break_lock=true``, breaks a lock whose holder still runs.

The seed of the draws is printed; ``CRASH_SEED=<seed>`` runs the same points again.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from ansible_collections.ecs_production.platform.plugins.module_utils.process import start_time

from localcloud.crashpoints import RUN_MARKER, Chain, ChainRun, processes_with, run_chain, seeded
from localcloud.harness import ENVIRONMENT, PREFIX, PROJECT, REPO, listener_weights, run_playbook
from tests.e2e.platform_support import identity, live_resources

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

LOCK = f"/{PROJECT}/{ENVIRONMENT}/lock"
PASSWORD = f"/{PROJECT}/{ENVIRONMENT}/db/password"
FIGURES = REPO / "tests" / "output" / "crash_points.json"
SEED, RNG = seeded()

# What a completed provision of inventories/local leaves, kind by kind (live_resources and census below).
PROVISIONED = {
    "vpcs": 1,
    "subnets": 4,
    "security_groups": 3,
    "internet_gateways": 1,
    "route_tables": 2,
    "load_balancers": 1,
    "listeners": 3,
    "target_groups": 2,
    "db_instances": 1,
    "db_subnet_groups": 1,
    "parameters": 1,
    "roles": 2,
    "log_groups": 1,
    "repositories": 1,
    "certificates": 1,
    "clusters": 1,
    "services": 2,
    "task_definitions": 2,
    "kms_keys": 1,
    "kms_aliases": 1,
    "alarms": 10,
    "dashboards": 1,
}


def census(api) -> dict[str, int]:
    """How many of each kind the environment has: live_resources (the lock's parameter left out) plus
    what it does not list (route tables, listeners, services, active task definitions, the key's aliases)."""
    found = live_resources(api)
    found["parameters"] = [name for name in found.get("parameters", []) if not name.startswith(LOCK)]
    counts = {kind: len(ids) for kind, ids in found.items()}
    ec2, elbv2, ecs = api.client("ec2"), api.client("elbv2"), api.client("ecs")
    tag_filter = [{"Name": f"tag:{k}", "Values": [v]} for k, v in identity().items()]
    counts["route_tables"] = len(ec2.describe_route_tables(Filters=tag_filter)["RouteTables"])
    counts["listeners"] = sum(
        len(elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"])
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
    )
    if counts.get("clusters"):
        services = ecs.list_services(cluster=PREFIX)["serviceArns"]
        described = ecs.describe_services(cluster=PREFIX, services=services)["services"] if services else []
        counts["services"] = sum(1 for s in described if s["status"] == "ACTIVE")
    counts["task_definitions"] = len(ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"])
    aliases = api.client("kms").list_aliases()["Aliases"]
    counts["kms_aliases"] = sum(1 for a in aliases if a["AliasName"] == f"alias/{PREFIX}")
    return {kind: n for kind, n in counts.items() if n}


def password(api) -> str | None:
    found = api.client("ssm").get_parameters(Names=[PASSWORD], WithDecryption=True)["Parameters"]
    return found[0]["Value"] if found else None


def lock_holder(api) -> dict | None:
    found = api.client("ssm").get_parameters(Names=[LOCK])["Parameters"]
    return json.loads(found[0]["Value"]) if found else None


def takeover_problems(runs: list[ChainRun], holders: list[dict | None]) -> list[str]:
    """A run interrupted with SIGINT (exit 99) released its lock as it exited (the lock_release callback);
    each run after a killed one that held the lock takes the lock over, naming the dead holder (a run
    killed at its own lock task may not have printed it yet)."""
    problems = [
        f"{run.point.describe()}: exit 99 left the lock held: {held}"
        for run, held in zip(runs, holders, strict=False)
        if run.point and run.point.signal == "SIGINT" and run.returncode == 99 and held
    ]
    for run, held in zip(runs[1:], holders, strict=False):
        reached = run.point is None or not run.point.segment.startswith("platform#1")
        said = held and f"process {held['pid']} on {held['host']} is gone" in " ".join(run.output.split())
        if held and reached and not said:
            problems.append(f"the run after a kill did not say it took over {held}:\n{run.output[-3000:]}")
    return problems


def refusals(api, where: str, seen: list[dict]) -> list[str]:
    """With the lock of a killed run (SIGKILL) left held: a holder that still runs (this test's process)
    and one on another host, whose process this run cannot see, are refused before anything changes,
    naming the holder and how to break the lock; then the dead run's lock is put back as it was."""
    ssm = api.client("ssm")
    dead = ssm.get_parameter(Name=LOCK)["Parameter"]["Value"]
    killed = json.loads(dead)
    seen.append(killed)
    problems = []
    if killed["host"] != socket.gethostname() or not isinstance(killed["pid"], int):
        problems.append(f"{where}: the lock does not name the killed run on this host: {killed}")
    if os.path.exists(f"/proc/{killed['pid']}"):
        problems.append(f"{where}: the lock's holder {killed['pid']} still runs after SIGKILL")
    left = census(api)
    holders = {
        "still running": (dict(killed, pid=os.getpid(), started=start_time(os.getpid())), ["which is still running"]),
        "on another host": (dict(killed, host="another-host"), ["another host"]),
    }
    for name, (holder, said) in holders.items():
        ssm.put_parameter(Name=LOCK, Value=json.dumps(holder), Type="String", Overwrite=True)
        refused = run_playbook(api, "provision", "-e", "platform_lock_wait=2")
        out = " ".join(refused.output.split())
        expected = ["is held by", "-e break_lock=true", *said] + (["stuck-lock.md"] if name == "still running" else [])
        missing = [text for text in expected if text not in out]
        if refused.returncode == 0 or missing:
            problems.append(f"{where}: a lock held {name} was not refused (missing {missing}):\n{out[-2000:]}")
        print(f"[crash]   {where}: a lock held {name} refused: rc {refused.returncode}, {refused.seconds:.1f} s")
    ssm.put_parameter(Name=LOCK, Value=dead, Type="String", Overwrite=True)
    if census(api) != left:
        problems.append(f"{where}: a refused run changed the account: {left} -> {census(api)}")
    return problems


def record(points: list[dict]) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({"seed": SEED, "points": points}, indent=2) + "\n")


@pytest.fixture(scope="module")
def api(aws_api):
    aws_api.reset()
    yield aws_api
    aws_api.reset()


def test_provision_then_teardown_killed_at_sampled_tasks_resume_to_exactly_what_they_make(api):
    rng = RNG
    print(f"\n[crash] seed {SEED} (CRASH_SEED={SEED} draws the same points)")
    first_password: list[str] = []
    problems: list[str] = []
    refused_once: list[dict] = []  # the lock of the killed run the refusals were tried with

    def after_provision_kill(run: ChainRun) -> None:
        where = run.point.describe()
        counts = census(api)
        extra = {kind: n for kind, n in counts.items() if n > PROVISIONED.get(kind, 0)}
        if extra:
            problems.append(f"{where}: more than a provision makes: {extra} (all: {counts})")
        secret = password(api)
        if secret is not None:
            first_password[:1] = first_password[:1] or [secret]
            if secret != first_password[0]:
                problems.append(f"{where}: the database password changed")
        if counts.get("listeners"):
            try:
                weights = listener_weights(api)
            except StopIteration:  # the HTTPS listener is not there yet
                weights = {}
            if weights.get("green"):
                problems.append(f"{where}: green got traffic: {weights}")
        holders.append(lock_holder(api))
        print(f"[crash]   {where}: rc {run.returncode}, {run.seconds:.1f} s")
        if run.point.signal == "SIGKILL" and holders[-1] and not refused_once:
            problems.extend(refusals(api, where, refused_once))

    # Every role's segment once; not the playbook-level include of the (disabled) cicd role, the database's
    # second segment (its wait) or the closing unlock and summary.
    roles = {"platform#1", "network#1", "secrets#1", "iam#1", "certificate#1", "rds#1", "alb#1", "ecs#1"}
    provision = Chain("provision", rng, select=lambda key: key in roles | {"observability#1"})
    holders: list[dict | None] = []
    runs = run_chain(api, provision, after_kill=after_provision_kill)
    final = runs[-1]
    problems += takeover_problems(runs, holders)
    assert not problems, "\n".join(problems)
    assert final.returncode == 0, f"the provision after {len(provision.points)} kills failed:\n{final.output[-6000:]}"
    assert census(api) == PROVISIONED, "the resumed provision left something other than the platform"
    assert first_password and password(api) == first_password[0], "the password was generated again"
    assert listener_weights(api) == {"blue": 100, "green": 0}
    assert not api.client("ssm").get_parameters(Names=[LOCK])["Parameters"], "the lock was left held"
    killed_in = {p.segment for p in provision.points}
    assert roles | {"observability#1"} <= killed_in, f"never killed in: {sorted(roles - killed_in)}"
    assert {p.signal for p in provision.points} == {"SIGKILL", "SIGINT"}
    assert refused_once, "no SIGKILL left the lock held: the refusals were not tried"
    print(f"[crash] provision: {len(provision.points)} kills, then a run of {final.seconds:.1f} s completed")

    # Teardown: a sample of its segments (each a target with probability 0.1; observability, its first role, always).
    before: list[int] = [sum(census(api).values())]

    def after_teardown_kill(run: ChainRun) -> None:
        counts = census(api)
        print(f"[crash]   {run.point.describe()}: rc {run.returncode}, {sum(counts.values())} resources left")
        if sum(counts.values()) > before[-1]:
            problems.append(f"{run.point.describe()}: teardown made something: {counts}")
        before.append(sum(counts.values()))
        holders.append(lock_holder(api))

    # The operator who knows a holder is dead (here one that still runs) breaks its lock: the first run.
    live = dict(refused_once[0], pid=os.getpid(), started=start_time(os.getpid()))
    api.client("ssm").put_parameter(Name=LOCK, Value=json.dumps(live), Type="String", Overwrite=True)
    # Not its lock's segment: the first run must get past the lock task to show that it broke the lock.
    teardown = Chain(
        "teardown", rng, select=lambda key: key != "platform#1" and (key == "observability#1" or rng.random() < 0.1)
    )
    holders = []
    runs = run_chain(api, teardown, after_kill=after_teardown_kill, first_args=("-e", "break_lock=true"))
    final = runs[-1]
    if "Breaking environment lock" not in " ".join(runs[0].output.split()):
        problems.append(f"the first teardown did not break the live holder's lock:\n{runs[0].output[-3000:]}")
    problems += takeover_problems(runs, holders)
    record([vars(p) for p in provision.points + teardown.points])
    assert not problems, "\n".join(problems)
    assert final.returncode == 0, f"the teardown after {len(teardown.points)} kills failed:\n{final.output[-6000:]}"
    # The key's alias stays with the key pending deletion, so that a provision within the window revives it.
    assert census(api) == {"kms_aliases": 1}, "the resumed teardown left something"
    assert f"Nothing tagged for {PREFIX} is left" in " ".join(final.output.split()), final.output[-3000:]
    assert teardown.points, "no teardown run was killed"
    # No task worker of a killed run outlived it (ansible-core detaches them from the run's process group).
    assert processes_with(f"{RUN_MARKER}=") == [], "a killed run's task worker is still running"
    print(f"[crash] teardown: {len(teardown.points)} kills, then a run of {final.seconds:.1f} s completed")
    print(f"[crash] {len(provision.points) + len(teardown.points)} crash points tried, all survived")
