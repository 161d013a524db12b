#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: environment_lock
version_added: 0.1.0
short_description: Take or release an environment's operation lock, held in an SSM parameter
description:
  - Makes the operations on an environment (deploy, swap, rollback) run one at a time. The lock is an
    AWS Systems Manager (SSM) Parameter Store C(String) parameter, for example V(/myapp/prod/lock), whose
    value records the holder's owner, its operation, when it was acquired, when it goes stale and a random
    token.
  - O(state=acquired) creates the parameter with a conditional write (C(PutParameter) without C(Overwrite)),
    so of several runs that start at once exactly one gets the lock. The others wait up to O(wait) seconds
    for it and then fail, naming the holder, its operation and how long ago it took the lock.
  - A lock past its C(expires_at) (its holder's O(stale_after)) is stale, as left by a run that died, and
    the next run takes it over with a warning naming the previous holder.
  - A lock can record the process that holds it (O(holder_host), O(holder_pid), O(holder_started), the
    ansible-playbook process, from the P(ecs_production.platform.controller_process#lookup) lookup). A run
    on the same host whose holder process is gone (no such process, or the process id now names a process
    started at another time) takes the lock over at once, without waiting for it to go stale, with a warning
    naming the dead holder. A holder that still runs, or one on another host, blocks as any other.
  - O(state=renewed) pushes the lock's C(expires_at) to O(stale_after) seconds from now, but only for the
    run holding it (the same O(token)); a long operation (a canary's bake) renews its lock as it goes, so
    that O(stale_after) can be short. A renewal by another run fails, naming who holds the lock. The renewal
    writes through the same claim as a deletion (see below), so it never overwrites a lock that another run
    is taking over.
  - O(state=released) deletes the lock, but only for the run holding it (the same O(token)), or with
    O(force=true). Release the lock in the C(always) section of a C(block), so a failed operation
    releases it too (see the examples).
  - SSM has no conditional delete. Every deletion (a release or the takeover of a stale lock) first
    creates a second parameter, C(<name>.claim-<hash of the lock value>), with the same conditional write,
    so only one run deletes a given lock, and re-reads the lock before deleting it. The claim is deleted
    at once afterwards. Two runs that find the same stale lock, or the same lock of a dead holder, therefore
    cannot both take it over.
  - Every refusal ends with how to break the lock (O(break_advice)), to be used only when the holder is known
    to be dead.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  name:
    description:
      - Name of the SSM parameter that holds the lock, for example V(/myapp/prod/lock).
    required: true
    type: str
  state:
    description:
      - V(acquired) takes the lock, waiting up to O(wait) seconds while another run holds it.
      - V(renewed) renews the lock held under O(token) for O(stale_after) seconds from now; it fails when the
        lock is not held under O(token) (held by another run, or gone), naming the holder.
      - V(released) deletes the lock held under O(token); releasing a lock that is not there is no change.
    choices: ['acquired', 'renewed', 'released']
    default: acquired
    type: str
  owner:
    description:
      - Who holds the lock, shown to the runs it blocks, for example
        V({{ lookup('env', 'USER') }}@{{ inventory_hostname }}) or a CI job URL.
      - The default is C(user@host) of the node the module runs on.
    type: str
  operation:
    description:
      - What the holder does under the lock, shown to the runs it blocks, for example V(swap to green).
    type: str
  token:
    description:
      - With O(state=released), the token that O(state=acquired) returned in RV(token). Only the run
        holding the lock releases it; another token, or none, fails unless O(force=true).
      - With O(state=renewed), required - the token that O(state=acquired) returned. Only the run holding the
        lock renews it.
      - With O(state=acquired), the token to hold the lock under instead of a random one. When the lock
        is already held under this token, the task succeeds without a change, so nested playbooks can
        share one lock.
    type: str
  force:
    description:
      - With O(state=released), delete the lock whoever holds it, with a warning naming the holder.
        This is how to break the lock of a run that is known to be dead before the lock goes stale.
      - Ignored with O(state=acquired) and O(state=renewed); a renewal never takes a lock from another run.
    type: bool
    default: false
  stale_after:
    description:
      - Seconds after which the lock this task acquires counts as stale, recorded in the lock as C(expires_at).
        Set it above the longest the operation can take between two renewals (O(state=renewed)).
      - With O(state=renewed), the lock goes stale this many seconds after the renewal.
      - Whether a lock held by another run is stale is decided by the C(expires_at) that run recorded,
        not by this option; a lock value this module did not write goes stale O(stale_after) seconds after
        it was last modified.
    type: int
    default: 900
  wait:
    description:
      - Seconds to keep trying while another run holds the lock, before failing.
      - V(0) fails at once.
    type: float
    default: 0
  wait_interval:
    description:
      - Seconds between two tries while waiting, each drawn at random between half and one and a half
        times this value so that waiting runs do not retry in step.
    type: float
    default: 5
  tags:
    description:
      - Tags given to the lock parameter when it is created.
    type: dict
  holder_host:
    description:
      - With O(state=acquired), the host of the process that holds the lock, recorded in the lock.
      - The default, when O(holder_pid) is set, is the host name of the node the module runs on.
    type: str
  holder_pid:
    description:
      - With O(state=acquired), the id of the process that holds the lock for as long as the operation runs,
        recorded in the lock, that is the ansible-playbook process (the lookup
        P(ecs_production.platform.controller_process#lookup) returns it), never the module's own process,
        which ends with the task.
      - Without it the lock records no process, and only goes when released, stale or broken.
    type: int
  holder_started:
    description:
      - With O(state=acquired), the start time of O(holder_pid) (field 22 of C(/proc/<pid>/stat)), recorded in
        the lock so that a process id the kernel gave to a later process is not taken for the holder.
    type: str
  break_advice:
    description:
      - How to break the lock, said at the end of every refusal to acquire or release it, for example
        V(re-run with -e break_lock=true).
    type: str
    default: release it with state=released and force=true
notes:
  - Check mode reads the lock and reports what would happen without writing. A lock held by another
    run does not fail the task in check mode; it is reported in RV(holder) with a warning. A renewal in check
    mode fails as a real one would when the lock is not held under O(token).
  - The lock does not stop anything by itself; it only works when every operation on the environment
    takes it first.
  - Staleness compares the lock's C(expires_at) with the clock of the node the module runs on; keep the
    clocks of the machines that run operations in sync.
  - Whether a holder process is gone is decided on the node the module runs on, and only for a holder
    recorded with that node's host name; run the module on the controller (as with C(connection=local)) for
    the holder process to be the controller's.
  - The module needs C(ssm:GetParameter), C(ssm:PutParameter) and C(ssm:DeleteParameter) on the
    parameter O(name) and on C(<name>.claim-*), and C(ssm:AddTagsToResource) when O(tags) is set.
seealso:
  - module: ecs_production.platform.ssm_secret
  - module: community.aws.ssm_parameter
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Swap under the environment lock, released whatever happens
  block:
    - name: Take the lock of myapp prod, waiting up to 10 minutes for a running operation
      ecs_production.platform.environment_lock:
        name: /myapp/prod/lock
        owner: "{{ lookup('env', 'USER') }}@{{ inventory_hostname }}"
        operation: swap to green
        stale_after: 1800
        wait: 600
      register: lock

    - name: Swap the listener weights
      ansible.builtin.include_role:
        name: swap
  always:
    - name: Release the lock, also when the swap failed
      ecs_production.platform.environment_lock:
        name: /myapp/prod/lock
        state: released
        token: "{{ lock.token | default(omit) }}"
      when: lock.acquired | default(false)

- name: Renew the lock before each chunk of a long bake, so that a short stale_after is enough
  ecs_production.platform.environment_lock:
    name: /myapp/prod/lock
    state: renewed
    token: "{{ lock.token }}"
    stale_after: 900

- name: Fail at once if another operation is running
  ecs_production.platform.environment_lock:
    name: /myapp/prod/lock
    operation: rollback
  register: lock

- name: Break the lock of a run known to be dead
  ecs_production.platform.environment_lock:
    name: /myapp/prod/lock
    state: released
    force: true
"""

RETURN = r"""
name:
  description: Name of the lock parameter.
  returned: always
  type: str
  sample: /myapp/prod/lock
acquired:
  description:
    - Whether this task holds the lock (in check mode, would hold it).
    - V(false) for O(state=released).
  returned: always
  type: bool
  sample: true
token:
  description:
    - The token the lock is held under; pass it to O(state=released).
  returned: when the lock was acquired, not in check mode
  type: str
  sample: 0f9c2a6e4b1d4e7fa1b2c3d4e5f60718
owner:
  description: Owner recorded in the lock this task holds.
  returned: when the lock was (or in check mode would be) acquired or renewed
  type: str
  sample: alice@deploy-host
operation:
  description: Operation recorded in the lock this task holds.
  returned: when the lock was (or in check mode would be) acquired or renewed
  type: str
  sample: swap to green
acquired_at:
  description: When the lock this task holds was acquired, in ISO 8601 UTC (a renewal keeps it).
  returned: when the lock was (or in check mode would be) acquired or renewed
  type: str
  sample: "2025-01-31T12:00:00.000+00:00"
expires_at:
  description: When the lock this task holds goes stale, in ISO 8601 UTC (after a renewal, the new expiry).
  returned: when the lock was (or in check mode would be) acquired or renewed
  type: str
  sample: "2025-01-31T12:15:00.000+00:00"
renewed:
  description: Whether the lock was (in check mode, would be) renewed.
  returned: when O(state=renewed)
  type: bool
  sample: true
renewed_at:
  description: When the lock was last renewed, in ISO 8601 UTC.
  returned: when O(state=renewed)
  type: str
  sample: "2025-01-31T12:05:00.000+00:00"
previous_expires_at:
  description: When the lock would have gone stale without this renewal, in ISO 8601 UTC.
  returned: when O(state=renewed)
  type: str
  sample: "2025-01-31T12:15:00.000+00:00"
holder:
  description:
    - The lock in place before this task, when it was not this task's own - the lock that blocks this task,
      the stale lock this task took over, with O(state=renewed) the other run's lock that refused the renewal,
      or, with O(state=released), the lock released.
    - The holder's token is never returned.
  returned: when such a lock was found
  type: dict
  contains:
    owner:
      description: Who holds the lock.
      type: str
      sample: bob@ci-runner
    operation:
      description: What the holder does under the lock.
      type: str
      sample: deploy v42
    acquired_at:
      description: When the holder acquired the lock, in ISO 8601 UTC.
      type: str
      sample: "2025-01-31T11:59:18.000+00:00"
    expires_at:
      description: When the lock goes (or went) stale, in ISO 8601 UTC.
      type: str
      sample: "2025-01-31T12:14:18.000+00:00"
    age_seconds:
      description: Seconds since the holder acquired the lock.
      type: int
      sample: 42
    stale:
      description: Whether the lock is past C(expires_at).
      type: bool
      sample: false
    host:
      description: Host of the process holding the lock, when the lock records one.
      type: str
      sample: deploy-host
    pid:
      description: Id of the process holding the lock, when the lock records one.
      type: int
      sample: 41234
    started:
      description: Start time of that process (field 22 of C(/proc/<pid>/stat)), when recorded.
      type: str
      sample: "8812345"
    holder_gone:
      description: Whether the holder's process is known to be gone (same host, no such process).
      type: bool
      sample: false
stale_taken_over:
  description: Whether this task took over (in check mode, would take over) a stale lock.
  returned: when O(state=acquired)
  type: bool
  sample: false
dead_holder_taken_over:
  description: Whether this task took over (in check mode, would take over) the lock of a holder process that is gone.
  returned: when O(state=acquired)
  type: bool
  sample: false
msg:
  description: What happened, in a sentence.
  returned: always
  type: str
  sample: Acquired environment lock /myapp/prod/lock for alice@deploy-host (swap to green).
"""

import getpass
import hashlib
import json
import secrets
import socket
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Dict
from typing import List
from typing import Optional

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from ansible_collections.ecs_production.platform.plugins.module_utils import ssm
from ansible_collections.ecs_production.platform.plugins.module_utils.common import UTC
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Clock
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import Lock
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import age_seconds
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import human_duration
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import isoformat
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import parse_lock
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import read_lock
from ansible_collections.ecs_production.platform.plugins.module_utils.process import GONE
from ansible_collections.ecs_production.platform.plugins.module_utils.process import holder_state
from ansible_collections.ecs_production.platform.plugins.module_utils.process import this_host

DEFAULT_STALE_AFTER = 900
MAX_VALUE_LENGTH = 4096  # a Standard-tier parameter value
MAX_NAME_LENGTH = 960  # SSM allows 1011 characters; the claim parameter adds 39
MAX_TOKEN_LENGTH = 128
# Tries within one attempt: the lock can be released, or a stale one deleted, between our write and our read.
TRIES_PER_ATTEMPT = 3
LOCK_DESCRIPTION = "Environment lock (ecs_production.platform.environment_lock): delete only to break a dead run's lock"
CLAIM_DESCRIPTION = "Claim to delete an environment lock (ecs_production.platform.environment_lock), removed at once"

ACQUIRED = "acquired"  # this attempt wrote the lock
ALREADY_HELD = "already held"  # the lock was already held under this task's token
HELD = "held"  # another run holds the lock
# Why a lock was taken over.
STALE = "stale"  # past its expires_at
DEAD = "dead"  # its holder process, on this host, is gone
DEFAULT_BREAK_ADVICE = "release it with state=released and force=true"
RUNBOOK = "docs/runbooks/stuck-lock.md"


class Request:
    """What the task asks for."""

    def __init__(
        self,
        *,
        name: str,
        owner: str,
        operation: str,
        token: str,
        stale_after: int,
        tags: Optional[Dict[str, str]] = None,
        token_given: bool = False,
        holder_host: Optional[str] = None,
        holder_pid: Optional[int] = None,
        holder_started: Optional[str] = None,
        break_advice: str = DEFAULT_BREAK_ADVICE,
    ) -> None:
        self.name = name
        self.owner = owner
        self.operation = operation
        self.token = token
        self.stale_after = stale_after
        self.tags = tags or {}
        self.token_given = token_given
        self.holder_pid = holder_pid
        self.holder_host = (holder_host or this_host()) if holder_pid else None
        self.holder_started = holder_started if holder_pid else None
        self.break_advice = break_advice


class Outcome:
    """The result of acquiring: the status, the lock now held (ours or another run's) and what was taken over."""

    def __init__(
        self,
        status: str,
        lock: Optional[Lock],
        taken_over: List[Lock],
        waited: float = 0.0,
        reasons: Optional[Dict[str, str]] = None,
    ) -> None:
        self.status = status
        self.lock = lock
        self.taken_over = taken_over
        self.waited = waited
        # Why each lock in taken_over was taken over (STALE or DEAD), by its raw value.
        self.reasons: Dict[str, str] = reasons or {}

    def reason(self, lock: Lock) -> str:
        return self.reasons.get(lock.raw, STALE)


# ---- lock values ------------------------------------------------------------------------------


def new_lock(request: Request, now: datetime) -> Lock:
    """The lock this task writes: the JSON value and its parsed form."""
    expires_at = now + timedelta(seconds=request.stale_after)
    value = {
        "owner": request.owner,
        "operation": request.operation,
        "acquired_at": isoformat(now),
        "expires_at": isoformat(expires_at),
        "token": request.token,
    }
    if request.holder_pid:
        value.update(host=request.holder_host, pid=request.holder_pid, started=request.holder_started)
    raw = json.dumps(value, sort_keys=True)
    return Lock(
        raw=raw,
        owner=request.owner,
        operation=request.operation,
        acquired_at=now,
        expires_at=expires_at,
        token=request.token,
        host=request.holder_host,
        pid=request.holder_pid,
        started=request.holder_started,
    )


def holder_gone(lock: Lock) -> bool:
    """Whether the process recorded as holding the lock ran on this host and is gone."""
    return holder_state(lock.host, lock.pid, lock.started) == GONE


def takeover_reason(lock: Lock, now: datetime) -> Optional[str]:
    """STALE or DEAD when another run's lock may be taken over, None while its holder may still use it."""
    if lock.is_stale(now):
        return STALE
    if holder_gone(lock):
        return DEAD
    return None


def claim_name(name: str, lock: Lock) -> str:
    """The parameter whose creation entitles one run to delete this very lock value."""
    return f"{name}.claim-{hashlib.sha256(lock.raw.encode('utf-8')).hexdigest()[:32]}"


# ---- AWS calls ----------------------------------------------------------------------------------


def create_parameter(client, name: str, value: str, description: str, tags: Optional[Dict[str, str]] = None) -> bool:
    """PutParameter without Overwrite: False when the parameter exists already."""
    params: Dict[str, Any] = {"Name": name, "Value": value, "Type": "String", "Description": description}
    if tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    return ssm.create_parameter(client, **params) is not None


# ---- the protocol ---------------------------------------------------------------------------------


def under_claim(client, request: Request, lock: Lock, now: datetime, *, operation: str, change) -> bool:
    """``change()`` applied to exactly this lock value, under the claim parameter (created only if absent) that
    makes one run the only one changing it, after a re-read under the claim shows the value is still that lock:
    False when another run holds the claim or the value changed. The claim is released in every case."""
    claim = claim_name(request.name, lock)
    claim_value = json.dumps({"owner": request.owner, "operation": operation, "claimed_at": isoformat(now)})
    if not create_parameter(client, claim, claim_value, CLAIM_DESCRIPTION):
        return False
    try:
        current = read_lock(client, request.name, request.stale_after)
        if current is None or current.raw != lock.raw:
            return False
        return change()
    finally:
        ssm.delete_parameter(client, claim)


def delete_exclusively(client, request: Request, lock: Lock, now: datetime) -> bool:
    """Delete exactly this lock value, unless another run is deleting it or it has changed since it was read.

    SSM has no conditional delete: the claim parameter, created only if absent, makes one run the only one
    that deletes a given lock value, and the re-read under the claim makes sure the value is still that lock.
    """
    return under_claim(
        client,
        request,
        lock,
        now,
        operation=request.operation,
        change=lambda: ssm.delete_parameter(client, request.name),
    )


def attempt(client, request: Request, clock: Clock) -> Outcome:
    """One try at the lock: write it if absent, take it over if stale, else report the holder."""
    taken_over: List[Lock] = []
    reasons: Dict[str, str] = {}
    holder: Optional[Lock] = None
    for _try in range(TRIES_PER_ATTEMPT):
        mine = new_lock(request, clock.now())
        created = create_parameter(client, request.name, mine.raw, LOCK_DESCRIPTION, request.tags)
        # Read back even after a successful write: a backend whose create-if-absent is not atomic shows here
        # the value of the run that really won.
        current = read_lock(client, request.name, request.stale_after)
        if current is None:
            continue  # released or broken since the write failed: try again
        if current.token == request.token:
            # A random token found there was written by this task, even if the write's answer was lost.
            status = ACQUIRED if created or not request.token_given else ALREADY_HELD
            return Outcome(status, current, taken_over, reasons=reasons)
        holder = current
        reason = takeover_reason(current, clock.now())
        if reason is None:
            break
        if delete_exclusively(client, request, current, clock.now()):
            taken_over.append(current)
            reasons[current.raw] = reason
    return Outcome(HELD, holder, taken_over, reasons=reasons)


def acquire(client, request: Request, wait: float, wait_interval: float, clock: Clock) -> Outcome:
    """Try until the lock is acquired or `wait` seconds have passed, sleeping a jittered `wait_interval`."""
    started = clock.monotonic()
    deadline = started + wait
    taken_over: List[Lock] = []
    reasons: Dict[str, str] = {}
    jitter = secrets.SystemRandom()
    while True:
        outcome = attempt(client, request, clock)
        taken_over.extend(outcome.taken_over)
        reasons.update(outcome.reasons)
        outcome.taken_over = taken_over
        outcome.reasons = reasons
        outcome.waited = clock.monotonic() - started
        remaining = deadline - clock.monotonic()
        if outcome.status != HELD or remaining <= 0:
            return outcome
        clock.sleep(min(remaining, jitter.uniform(0.5, 1.5) * wait_interval))


def plan_acquire(client, request: Request, clock: Clock) -> Outcome:
    """Check mode: what acquiring would do, from one read."""
    current = read_lock(client, request.name, request.stale_after)
    now = clock.now()
    if current is None:
        return Outcome(ACQUIRED, new_lock(request, now), [])
    if current.token == request.token:
        return Outcome(ALREADY_HELD, current, [])
    reason = takeover_reason(current, now)
    if reason is not None:
        return Outcome(ACQUIRED, new_lock(request, now), [current], reasons={current.raw: reason})
    return Outcome(HELD, current, [])


# ---- results and messages ---------------------------------------------------------------------------


def label(lock: Lock) -> str:
    return f"{lock.owner} ({lock.operation or 'no operation given'})"


def describe(lock: Lock, now: datetime) -> Dict[str, Any]:
    """The holder as returned to the caller, with whether its process is known to be gone."""
    described = lock.describe(now)
    if lock.pid is not None:
        described["holder_gone"] = holder_gone(lock)
    return described


def break_hint(request: Request) -> str:
    """The end of every refusal: how to break the lock, and when."""
    return (
        f" Only if you know the holder is dead, break the lock: {request.break_advice}"
        f" (see {RUNBOOK} in the ecs_production.platform collection)."
    )


def takeover_warning(name: str, lock: Lock, now: datetime, check_mode: bool, *, won: bool, reason: str = STALE) -> str:
    if check_mode:
        verb = "Would take over"
    elif won:
        verb = "Took over"
    else:
        verb = "Another run got the lock first after this task removed"
    since = f" since {isoformat(lock.acquired_at)} ({human_duration(age_seconds(lock, now))} ago)"
    if reason == DEAD:
        return (
            f"{verb} the environment lock {name} held by {label(lock)}{since}, whose {lock.process()} is gone"
            " (the run was killed or died; its lock would have gone stale at"
            f" {isoformat(lock.expires_at)}). Check that its operation did not leave the environment half done."
        )
    return (
        f"{verb} the stale environment lock {name} held by {label(lock)}{since},"
        f" stale since {isoformat(lock.expires_at)}. Check that its operation did not leave the environment half done."
    )


def holder_process_note(holder: Lock) -> str:
    """Where the holder runs, as said in a refusal."""
    if holder.pid is None:
        return ""
    if holder.host == this_host():
        return f", by {holder.process()}" + ("" if holder_gone(holder) else ", which is still running")
    return f", by {holder.process()} (another host: this run cannot tell whether it still runs)"


def held_message(request: Request, holder: Optional[Lock], now: datetime, waited: float) -> str:
    name = request.name
    if holder is None:
        return f"Could not acquire environment lock {name}: other runs kept taking and releasing it." + break_hint(
            request
        )
    message = (
        f"Environment lock {name} is held by {label(holder)}{holder_process_note(holder)},"
        f" acquired {human_duration(age_seconds(holder, now))} ago at {isoformat(holder.acquired_at)}"
    )
    if holder.is_stale(now):
        message += (
            f"; it is stale since {isoformat(holder.expires_at)}, but another run is taking it over (or died doing so)"
        )
    elif holder_gone(holder):
        message += f"; its {holder.process()} is gone, but another run is taking it over (or died doing so)"
    else:
        message += (
            f"; it goes stale at {isoformat(holder.expires_at)}"
            f" (in {human_duration((holder.expires_at - now).total_seconds())})"
        )
    if waited > 0:
        message += f". Gave up after waiting {human_duration(waited)}"
    return (
        message + ". Let that operation finish, or retry with a longer wait. If that run is dead, the next run"
        " takes the lock over once it is stale (at once, on the same host, when its process is gone)."
        + break_hint(request)
    )


def acquire_result(module: AnsibleAWSModule, request: Request, outcome: Outcome, now: datetime) -> Dict[str, Any]:
    check_mode = module.check_mode
    name = request.name
    for lock in outcome.taken_over:
        module.warn(
            takeover_warning(name, lock, now, check_mode, won=outcome.status != HELD, reason=outcome.reason(lock))
        )
    result: Dict[str, Any] = {
        "name": name,
        "stale_taken_over": any(outcome.reason(lock) == STALE for lock in outcome.taken_over),
        "dead_holder_taken_over": any(outcome.reason(lock) == DEAD for lock in outcome.taken_over),
    }
    if outcome.taken_over:
        result["holder"] = describe(outcome.taken_over[-1], now)
    if outcome.status == HELD:
        message = held_message(request, outcome.lock, now, outcome.waited)
        if outcome.lock is not None:
            result["holder"] = describe(outcome.lock, now)
        if not check_mode:
            module.fail_json(msg=message, acquired=False, changed=bool(outcome.taken_over), **result)
        module.warn(f"In a real run this task would wait up to {module.params['wait']:g} s and fail: {message}")
        result.update(changed=False, acquired=False, msg=message)
        if outcome.lock is not None:
            result["diff"] = {"before": outcome.lock.summary(), "after": outcome.lock.summary()}
        return result

    lock = outcome.lock
    result.update(
        changed=outcome.status == ACQUIRED,
        acquired=True,
        owner=lock.owner,
        operation=lock.operation,
        acquired_at=isoformat(lock.acquired_at),
        expires_at=isoformat(lock.expires_at),
    )
    if not check_mode:
        result["token"] = lock.token
    if outcome.status == ALREADY_HELD:
        result["msg"] = f"Environment lock {name} is already held under this token by {label(lock)}."
        before = lock.summary()
    else:
        verb = "Would acquire" if check_mode else "Acquired"
        result["msg"] = f"{verb} environment lock {name} for {label(lock)}"
        if outcome.taken_over:
            previous = outcome.taken_over[-1]
            if outcome.reason(previous) == DEAD:
                result["msg"] += f", taking over the lock of {label(previous)}, whose {previous.process()} is gone"
            else:
                result["msg"] += f", taking over the stale lock of {label(previous)}"
        result["msg"] += "."
        before = outcome.taken_over[-1].summary() if outcome.taken_over else {}
    result["diff"] = {"before": before, "after": lock.summary()}
    return result


def not_released(
    module: AnsibleAWSModule, client, request: Request, released: Lock, result: Dict[str, Any]
) -> Dict[str, Any]:
    """The lock could not be deleted as read: say why, from what is there now."""
    name = request.name
    result.pop("diff", None)
    now_held = read_lock(client, name, request.stale_after)
    if now_held is not None and now_held.raw == released.raw:
        module.fail_json(
            msg=f"Environment lock {name} went stale at {isoformat(released.expires_at)} and another run is"
            " taking it over right now: the operation run under it may have overlapped with another."
            " Nothing was released.",
            **result,
        )
    if now_held is not None:
        module.fail_json(
            msg=f"Environment lock {name} changed while releasing it: it is now held by {label(now_held)}"
            f" since {isoformat(now_held.acquired_at)}. Nothing was released.",
            **result,
        )
    result["msg"] = f"Environment lock {name} was released by another run meanwhile."
    return result


# ---- renewing ---------------------------------------------------------------------------------------


def renewed_lock(current: Lock, request: Request, now: datetime) -> Lock:
    """The holder's lock with a new expiry, `stale_after` seconds from now: every other field as it was."""
    value = json.loads(current.raw)
    value.update(expires_at=isoformat(now + timedelta(seconds=request.stale_after)), renewed_at=isoformat(now))
    return parse_lock({"Value": json.dumps(value, sort_keys=True)}, request.stale_after)


def overwrite_exclusively(client, request: Request, lock: Lock, replacement: Lock, now: datetime) -> bool:
    """Replace exactly this lock value, under the claim a deletion of it would need, so that no run takes the
    lock over (or releases it) while it is renewed: False when another run holds the claim or the value changed."""

    def overwrite() -> bool:
        ssm.overwrite_parameter(
            client, Name=request.name, Value=replacement.raw, Type="String", Description=LOCK_DESCRIPTION
        )
        return True

    return under_claim(client, request, lock, now, operation="renew", change=overwrite)


def not_held_message(request: Request, current: Optional[Lock], now: datetime, what: str) -> str:
    """Why this run cannot renew: the lock is gone, or another run holds it."""
    name = request.name
    if current is None:
        return (
            f"Environment lock {name} is not held any more: this run cannot {what} it. It was released or broken"
            " (-e break_lock=true, state=released with force=true), or it went stale and another run took it over"
            " and finished: an operation may have overlapped with this one. Check the environment before going on."
        )
    return (
        f"Environment lock {name} is held by {label(current)}{holder_process_note(current)} since"
        f" {isoformat(current.acquired_at)} ({human_duration(age_seconds(current, now))} ago), not under this run's"
        f" token: only the run holding the lock can {what} it. This run lost the lock (it went stale and was taken"
        " over, or was broken): its operation may have overlapped with that one. Check the environment before"
        " going on."
    )


def renew(module: AnsibleAWSModule, client, request: Request, clock: Clock) -> Dict[str, Any]:
    name, token = request.name, module.params["token"]
    result: Dict[str, Any] = {"name": name, "acquired": False, "renewed": False, "changed": False}
    current = read_lock(client, name, request.stale_after)
    now = clock.now()
    if current is None or current.token != token:
        if current is not None:
            result["holder"] = describe(current, now)
        module.fail_json(msg=not_held_message(request, current, now, "renew"), **result)
    if current.is_stale(now):
        module.warn(
            f"Environment lock {name} held by this run had gone stale at {isoformat(current.expires_at)}"
            f" ({human_duration((now - current.expires_at).total_seconds())} ago) before this renewal: another run"
            " could have taken it over meanwhile. Renew it more often than platform_lock_stale_after (stale_after)."
        )
    renewed = renewed_lock(current, request, now)
    result.update(
        acquired=True,
        renewed=True,
        changed=True,
        owner=renewed.owner,
        operation=renewed.operation,
        acquired_at=isoformat(renewed.acquired_at),
        expires_at=isoformat(renewed.expires_at),
        renewed_at=isoformat(now),
        previous_expires_at=isoformat(current.expires_at),
        diff={"before": current.summary(), "after": renewed.summary()},
    )
    if module.check_mode:
        result["msg"] = f"Would renew environment lock {name} until {isoformat(renewed.expires_at)}."
        return result
    if not overwrite_exclusively(client, request, current, renewed, now):
        now_held = read_lock(client, name, request.stale_after)
        if now_held is not None and now_held.raw == current.raw:
            # Another run holds the claim on this very value: it is taking the (stale) lock over.
            result.update(acquired=False, renewed=False, changed=False)
            result.pop("diff", None)
            module.fail_json(
                msg=f"Environment lock {name} went stale at {isoformat(current.expires_at)} and another run is"
                " taking it over right now: this run lost the lock, and its operation may overlap with that run's."
                " Nothing was renewed.",
                **result,
            )
        result.update(acquired=False, renewed=False, changed=False)
        result.pop("diff", None)
        if now_held is not None and now_held.token != token:
            result["holder"] = describe(now_held, now)
        module.fail_json(msg=not_held_message(request, now_held, now, "renew") + " Nothing was renewed.", **result)
    result["msg"] = (
        f"Renewed environment lock {name} held by {label(renewed)} until {isoformat(renewed.expires_at)}"
        f" (was {isoformat(current.expires_at)})."
    )
    return result


def release(module: AnsibleAWSModule, client, request: Request, clock: Clock) -> Dict[str, Any]:
    name, token, force = request.name, module.params["token"], module.params["force"]
    result: Dict[str, Any] = {"name": name, "acquired": False, "changed": False}
    current = read_lock(client, name, request.stale_after)
    now = clock.now()
    if current is None:
        result.update(msg=f"Environment lock {name} is not held: nothing to release.", diff={"before": {}, "after": {}})
        return result
    result["holder"] = describe(current, now)
    mine = token is not None and current.token == token
    if not mine:
        if not force:
            whose = "under another token" if token is not None else "and no token was given"
            module.fail_json(
                msg=f"Environment lock {name} is held by {label(current)} since {isoformat(current.acquired_at)}"
                f" ({human_duration(age_seconds(current, now))} ago) {whose}: only the run holding it releases it,"
                " with the token that acquiring returned." + break_hint(request),
                **result,
            )
        verb = "Would break" if module.check_mode else "Breaking"
        module.warn(
            f"{verb} environment lock {name} held by {label(current)} since {isoformat(current.acquired_at)}"
            f" ({human_duration(age_seconds(current, now))} ago)."
        )
    result["diff"] = {"before": current.summary(), "after": {}}
    if module.check_mode:
        result.update(changed=True, msg=f"Would release environment lock {name} held by {label(current)}.")
        return result
    if mine:
        deleted = delete_exclusively(client, request, current, now)
    else:
        # force: whatever is there goes, with any claim a run that died while deleting it left behind.
        deleted = ssm.delete_parameter(client, name)
        ssm.delete_parameter(client, claim_name(name, current))
    if not deleted:
        return not_released(module, client, request, current, result)
    result.update(changed=True, msg=f"Released environment lock {name} held by {label(current)}.")
    return result


# ---- the module -------------------------------------------------------------------------------------


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def validate(module: AnsibleAWSModule) -> None:
    params = module.params
    problems = []
    if not params["name"]:
        problems.append("name must not be empty")
    elif len(params["name"]) > MAX_NAME_LENGTH:
        problems.append(f"name must have at most {MAX_NAME_LENGTH} characters")
    if params["stale_after"] < 1:
        problems.append(f"stale_after must be at least 1 second, not {params['stale_after']}")
    if params["wait"] < 0:
        problems.append(f"wait must not be negative, not {params['wait']:g}")
    if params["wait_interval"] <= 0:
        problems.append(f"wait_interval must be more than 0, not {params['wait_interval']:g}")
    token = params["token"]
    if params["holder_pid"] is not None and params["holder_pid"] < 1:
        problems.append(f"holder_pid must be a process id (at least 1), not {params['holder_pid']}")
    if token is not None and not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        problems.append(f"token must have between 1 and {MAX_TOKEN_LENGTH} characters")
    if params["state"] == "renewed" and token is None:
        problems.append("state=renewed needs the token that state=acquired returned (only the holder renews)")
    if problems:
        module.fail_json(msg=f"Invalid options: {'; '.join(problems)}. No AWS call was made.")


def build_request(module: AnsibleAWSModule) -> Request:
    params = module.params
    request = Request(
        name=params["name"],
        owner=params["owner"] or default_owner(),
        operation=params["operation"] or "",
        token=params["token"] or secrets.token_hex(16),
        stale_after=params["stale_after"],
        tags=params["tags"],
        token_given=params["token"] is not None,
        holder_host=params["holder_host"],
        holder_pid=params["holder_pid"],
        holder_started=params["holder_started"],
        break_advice=params["break_advice"] or DEFAULT_BREAK_ADVICE,
    )
    if params["state"] == "acquired":
        length = len(new_lock(request, datetime.now(UTC)).raw)
        if length > MAX_VALUE_LENGTH:
            module.fail_json(
                msg=f"The lock value would have {length} characters, more than the {MAX_VALUE_LENGTH} SSM allows:"
                " shorten owner or operation. No AWS call was made."
            )
    return request


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="acquired", choices=["acquired", "renewed", "released"]),
        owner=dict(type="str"),
        operation=dict(type="str"),
        token=dict(type="str", no_log=False),
        force=dict(type="bool", default=False),
        stale_after=dict(type="int", default=DEFAULT_STALE_AFTER),
        wait=dict(type="float", default=0),
        wait_interval=dict(type="float", default=5),
        tags=dict(type="dict"),
        holder_host=dict(type="str"),
        holder_pid=dict(type="int"),
        holder_started=dict(type="str"),
        break_advice=dict(type="str", default=DEFAULT_BREAK_ADVICE),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    request = build_request(module)
    clock = Clock()

    client = module.client("ssm", retry_decorator=ssm.SSM_RETRY)
    try:
        if module.params["state"] == "acquired":
            if module.check_mode:
                outcome = plan_acquire(client, request, clock)
            else:
                outcome = acquire(client, request, module.params["wait"], module.params["wait_interval"], clock)
            result = acquire_result(module, request, outcome, clock.now())
        elif module.params["state"] == "renewed":
            result = renew(module, client, request, clock)
        else:
            result = release(module, client, request, clock)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
