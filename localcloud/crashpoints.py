"""Crash points: kill a playbook after a sampled task, again and again, until a run completes.

A *chain* runs the same playbook repeatedly. Each run is killed (SIGKILL, or SIGINT as Ctrl-C sends it)
at one point in the part of the run a crash can hurt, from the task that takes the environment's lock
on; the next run resumes from whatever the killed one left. The points are drawn from the run's own
task banners (``TASK [role : name]``), grouped into *segments* (consecutive tasks of one role, or a
playbook-level task): a chain targets its segments in order and kills each target once, after a task
inside it drawn at random (each task with probability ``within``, else after the segment's last task),
plus a random delay of up to ``max_delay`` seconds, so that some kills land while a module is running.
The run that meets no target left completes, and must.

Shared by ``tests/e2e`` (the crash-resume tests) and ``bench/reliability.py``. A chain is reproducible
from its seed: the runs' banners are the same for the same account state.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from localcloud.harness import REPO, playbook_command, playbook_env
from localcloud.procs import with_environment

BANNER = re.compile(r"^TASK \[(?:(?P<role>[\w.]+) : )?(?P<name>.*?)\] \**\s*$")
LOCK_TASK = "Take the environment's lock"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
RUN_MARKER = "LOCALCLOUD_CHAIN_RUN"  # in the environment of a run and of its task workers

# A shell's background job ignores SIGINT and the playbook would inherit that: undo it before the exec.
UNIGNORE_SIGINT_AND_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"
)


def seeded(variable: str = "CRASH_SEED") -> tuple[int, random.Random]:
    """A seed (``$CRASH_SEED``, else a fresh one) and the generator of the draws: print the seed, and the
    same seed draws the same points again."""
    seed = int(os.environ.get(variable) or random.SystemRandom().randrange(1_000_000))
    return seed, random.Random(seed)  # noqa: S311 - reproducible draws of crash points, not a secret


def segment_of(banner: str) -> str | None:
    """The segment a ``TASK [...]`` line belongs to: the role's short name, or the task's own name for a
    task outside any role; None for a line that is not a task banner."""
    found = BANNER.match(banner.rstrip("\n"))
    if not found:
        return None
    return found["role"].rsplit(".", 1)[-1] if found["role"] else found["name"]


def task_of(banner: str) -> str:
    found = BANNER.match(banner.rstrip("\n"))
    return f"{found['role'].rsplit('.', 1)[-1]} : {found['name']}" if found and found["role"] else banner.strip()


@dataclass
class CrashPoint:
    """Where one run of a chain was killed."""

    playbook: str
    segment: str  # the segment killed in (``rds#2``: the run's second rds segment)
    task: str  # the task whose banner had just shown ("role : name")
    position: int  # that task's number within the segment (1: its first)
    after_last: bool  # True: killed at the next segment's first banner, after the segment's last task
    signal: str  # SIGKILL or SIGINT
    delay: float  # seconds between the banner and the signal
    returncode: int | None = None
    note: str = ""  # what else it took to end the run (after_ctrl_c)

    def describe(self) -> str:
        where = f"at {self.segment} task {self.position}"
        if self.after_last:
            where = f"after the last task of {self.segment}"
        note = f" [{self.note}]" if self.note else ""
        return f"{self.playbook}: {self.signal} {where} (+{self.delay:.2f} s): {self.task}{note}"


@dataclass
class Chain:
    """The targets of one chain and what it has covered. ``select`` chooses which segments are targets
    (all by default); the rest are passed through, as covered."""

    playbook: str
    rng: random.Random
    within: float = 0.35
    max_delay: float = 0.6
    select: Callable[[str], bool] = lambda _segment: True
    covered: list[str] = field(default_factory=list)
    points: list[CrashPoint] = field(default_factory=list)
    _signal_turn: int = 0

    def __post_init__(self) -> None:
        self._signal_turn = self.rng.randrange(2)

    def decider(self) -> Callable[[str], CrashPoint | None]:
        """A fresh per-run decision: called with each output line, returns the point to kill at (once)."""
        state = {"started": False, "segment": None, "count": {}, "target": None, "position": 0}

        def decide(line: str) -> CrashPoint | None:
            short = segment_of(line)
            if short is None:
                return None
            if not state["started"]:
                if LOCK_TASK not in line or "Validating arguments" in line:
                    return None
                state["started"] = True
            if short != state["segment"]:
                state["segment"] = short
                state["count"][short] = state["count"].get(short, 0) + 1
                if state["target"] is not None:  # the target's last task is done: kill after it
                    return self._point(state["target"], line, state["position"], after_last=True)
                key = f"{short}#{state['count'][short]}"
                if key not in self.covered:
                    if self.select(key):
                        state["target"], state["position"] = key, 0
                    else:
                        self.covered.append(key)
            if state["target"] is None:
                return None
            state["position"] += 1
            if self.rng.random() < self.within:
                return self._point(state["target"], line, state["position"], after_last=False)
            return None

        return decide

    def _point(self, segment: str, line: str, position: int, after_last: bool) -> CrashPoint:
        name = ("SIGKILL", "SIGINT")[self._signal_turn % 2]
        self._signal_turn += 1
        self.covered.append(segment)
        return CrashPoint(
            self.playbook,
            segment,
            task_of(line),
            position,
            after_last,
            name,
            round(self.rng.uniform(0, self.max_delay), 2),
        )


@dataclass
class ChainRun:
    output: str
    returncode: int
    point: CrashPoint | None  # None: it ran to its end
    seconds: float


def after_ctrl_c(process: subprocess.Popen, point: CrashPoint, patience: float = 90.0) -> str:
    """What the run prints after its Ctrl-C, as an operator at a terminal would see it end.

    ansible-core 2.19 mostly stops at once (exit 99). It may also take a Ctrl-C during a module as the end of
    that task only and go on to the end of the play (ansible/ansible#86078; seen here: a teardown went on and
    completed, once in CI taking longer than a minute). After ``patience`` seconds without an end the operator
    presses Ctrl-C again, and after as long again kills it. ``point.note`` says which happened."""
    for action in ("second Ctrl-C", "SIGKILL after two Ctrl-C"):
        try:
            return process.communicate(timeout=patience)[0]
        except subprocess.TimeoutExpired:  # retrying communicate() loses none of the output
            point.note = action
            os.killpg(process.pid, signal.SIGINT if action == "second Ctrl-C" else signal.SIGKILL)
    return process.communicate()[0]


def processes_with(marker: str) -> list[int]:
    """Live processes with ``marker`` (``NAME=value``, or ``NAME=`` for any value) in their environment."""
    return with_environment(marker)


def run_killed(
    target,
    playbook: str,
    decide: Callable[[str], CrashPoint | None],
    *args: str,
    env: dict | None = None,
    timeout: float = 600,
) -> ChainRun:
    """Run ``playbook`` against ``target`` (anything with an endpoint_url) and send the signal of the first
    point ``decide`` returns for a line of its output; a run ``decide`` never stops ends by itself."""
    command = [sys.executable, "-c", UNIGNORE_SIGINT_AND_EXEC, *playbook_command(playbook, *args)]
    started = time.monotonic()
    marker = f"{RUN_MARKER}={uuid.uuid4().hex}"
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=playbook_env(target, {"ANSIBLE_NOCOLOR": "1", **(env or {}), RUN_MARKER: marker.split("=", 1)[1]}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    point = None
    try:
        for line in process.stdout:
            seen.append(line)
            point = decide(line)
            if point is not None or time.monotonic() - started > timeout:
                break
        if point is not None:
            time.sleep(point.delay)
            os.killpg(process.pid, SIGNALS[point.signal])
            if point.signal == "SIGINT":
                seen.append(after_ctrl_c(process, point))
        else:
            seen.append(process.communicate(timeout=max(1.0, timeout - (time.monotonic() - started)))[0])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # ansible-core's task workers leave the process group (setsid): a worker a SIGKILL did not reach would
        # finish its module call while the next run goes on. Stop them as a crash of the machine would.
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if point is not None:
        point.returncode = process.returncode
    return ChainRun("".join(seen), process.returncode, point, time.monotonic() - started)


def run_once(target, chain: Chain, *args: str, env: dict | None = None, timeout: float = 600) -> ChainRun:
    """One run of the chain's playbook, killed where the chain decides (the point kept in ``chain.points``)."""
    run = run_killed(target, chain.playbook, chain.decider(), *args, env=env, timeout=timeout)
    if run.point is not None:
        chain.points.append(run.point)
    return run


def run_chain(
    target,
    chain: Chain,
    *args: str,
    after_kill: Callable[[ChainRun], None] = lambda _run: None,
    max_runs: int = 20,
    env: dict | None = None,
    first_args: tuple[str, ...] = (),
) -> list[ChainRun]:
    """Runs of ``chain.playbook`` until one is not killed; ``after_kill`` checks the account after each
    killed run. ``first_args`` go to the first run only, after ``args``. Returns every run, the last the
    one that completed (or failed by itself)."""
    runs: list[ChainRun] = []
    for index in range(max_runs):
        runs.append(run_once(target, chain, *args, *(first_args if index == 0 else ()), env=env))
        if runs[-1].point is None:
            return runs
        after_kill(runs[-1])
    tried = [p.describe() for p in chain.points]
    raise AssertionError(f"{chain.playbook}: still killed after {max_runs} runs: {tried}")
