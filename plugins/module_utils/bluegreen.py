# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The blue/green state and the decisions made on it, as pure functions (no AWS call).

``bluegreen_info`` reads the load balancer, the services, the target groups, the alarms and the lock and
builds the state with :func:`color_state` and :func:`platform_state`; the ``bluegreen_*`` filters and the
module's wait use the decisions below, so that which colour is active, where a rollback goes, whether a
deploy is done (or why it failed) and how the status reads are decided in one place, with unit tests,
rather than in Jinja.

The state is plain data (what the module returns)::

    {"colors": {"blue": {"weight": 100, "test_weight": 0, "desired": 2, "running": 2, "healthy": 2,
                         "version": "v1", "task_definition": "app-blue:3", ...}, "green": {...}},
     "weights": {"blue": 100, "green": 0}, "test_weights": {...}, "test_port": 9443,
     "active": "blue", "idle": "green", "last_swap": {"from": "green", "to": "blue"},
     "alarms": {"app-blue-5xx": "OK", ...}, "lock": None | {"owner": ..., "operation": ..., "age_seconds": ...}}
"""

from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

RECORD_FROM = "BlueGreenFrom"
RECORD_TO = "BlueGreenTo"
# Words in ECS service events that tell of a failure (kept for the diagnosis: failed tasks keep being replaced,
# and their reasons scroll out of the recent events quickly).
FAILURE_WORDS = ("fail", "unhealthy", "error", "unable", "cannot", "exited")
RECENT_EVENTS = 8
FAILURE_EVENTS = 6
STOPPED_TASKS = 3  # the newest stopped tasks of a colour the diagnosis quotes
LOG_LINES = 5  # the last lines of each one's log
LOG_LINE_CHARS = 300


# ---- small readers of AWS shapes ----


def short_name(arn: str) -> str:
    """What follows the last slash of an ARN (``family:revision`` of a task definition); the value itself
    when it has no slash."""
    return arn.rsplit("/", 1)[-1] if arn else ""


def target_view(description: Mapping[str, Any]) -> Dict[str, Any]:
    """One DescribeTargetHealth entry as {id, port, state, reason, description}."""
    target = description.get("Target") or {}
    health = description.get("TargetHealth") or {}
    return {
        "id": target.get("Id", ""),
        "port": target.get("Port"),
        "state": health.get("State", "unknown"),
        "reason": health.get("Reason", ""),
        "description": health.get("Description", ""),
    }


def deployment_view(deployment: Mapping[str, Any]) -> Dict[str, Any]:
    """One ECS deployment as {status, task_definition, rollout_state, rollout_state_reason, created_at, ...}."""
    created = deployment.get("createdAt")
    return {
        "status": deployment.get("status", ""),
        "task_definition": short_name(deployment.get("taskDefinition", "")),
        "rollout_state": deployment.get("rolloutState", ""),
        "rollout_state_reason": deployment.get("rolloutStateReason", ""),
        "desired": deployment.get("desiredCount", 0),
        "running": deployment.get("runningCount", 0),
        "pending": deployment.get("pendingCount", 0),
        "failed_tasks": deployment.get("failedTasks", 0),
        "created_at": created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
    }


def container_version(task_definition: Optional[Mapping[str, Any]], container_name: Optional[str] = None) -> str:
    """The version a task definition runs: its container's APP_VERSION, else its image's tag, else "?"."""
    containers = (task_definition or {}).get("containerDefinitions") or []
    if container_name:
        containers = [c for c in containers if c.get("name") == container_name] or containers
    if not containers:
        return "?"
    container = containers[0]
    for pair in container.get("environment") or []:
        if pair.get("name") == "APP_VERSION" and pair.get("value"):
            return pair["value"]
    image = container.get("image", "")
    if "@" in image:
        return image.rsplit("@", 1)[-1][:19]
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "?"


# ---- the state ----


def color_state(
    *,
    weight: int,
    test_weight: Optional[int],
    target_group: str,
    target_group_arn: str,
    targets: Optional[List[Dict[str, Any]]],
    service_name: Optional[str],
    service: Optional[Mapping[str, Any]],
    task_definition: Optional[Mapping[str, Any]],
    container_name: Optional[str] = None,
    alarms: Optional[Mapping[str, str]] = None,
    events: int = 0,
) -> Dict[str, Any]:
    """What one colour is: its traffic, service, tasks, targets, version and alarms."""
    service = service or {}
    deployments = [deployment_view(d) for d in service.get("deployments") or []]
    primary = next((d for d in deployments if d["status"] == "PRIMARY"), None)
    targets = targets or []
    return {
        "weight": weight,
        "test_weight": test_weight,
        "target_group": target_group,
        "target_group_arn": target_group_arn,
        "service": service_name,
        "exists": bool(service),
        "desired": service.get("desiredCount", 0),
        "running": service.get("runningCount", 0),
        "pending": service.get("pendingCount", 0),
        "healthy": sum(1 for t in targets if t["state"] == "healthy"),
        "targets": targets,
        "task_definition": short_name(service.get("taskDefinition", "")),
        "version": container_version(task_definition, container_name) if task_definition else "-",
        "deployments": deployments,
        "deployment": primary,
        "deployed_at": primary["created_at"] if primary else "",
        "alarms": dict(alarms or {}),
        "events": [e.get("message", "") for e in (service.get("events") or [])][:events],
    }


def active_color(colors: Sequence[str], weights: Mapping[str, int]) -> str:
    """The colour with the highest weight on the production listener (all of it, outside a canary); on a tie
    (or no traffic at all) the first colour, in the order given."""
    best, best_weight = colors[0], -1
    for color in colors:
        if weights.get(color, 0) > best_weight:
            best, best_weight = color, weights.get(color, 0)
    return best


def idle_color(colors: Sequence[str], active: str) -> str:
    """The colour a deploy goes to: the first that is not the active one."""
    return next(color for color in colors if color != active)


def platform_state(
    colors: Mapping[str, Dict[str, Any]],
    *,
    test_port: Optional[int] = None,
    record: Optional[Mapping[str, str]] = None,
    alarms: Optional[Mapping[str, str]] = None,
    lock: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The whole state from each colour's: the weights, which colour is active and which idle, the last swap."""
    order = list(colors)
    weights = {color: state["weight"] for color, state in colors.items()}
    active = active_color(order, weights)
    record = record or {}
    last_swap = None
    if record.get(RECORD_FROM) in colors and record.get(RECORD_TO) in colors:
        last_swap = {"from": record[RECORD_FROM], "to": record[RECORD_TO]}
    return {
        "colors": dict(colors),
        "weights": weights,
        "test_weights": {c: s["test_weight"] for c, s in colors.items() if s["test_weight"] is not None},
        "test_port": test_port,
        "active": active,
        "idle": idle_color(order, active),
        "last_swap": last_swap,
        "alarms": dict(alarms or {}),
        "lock": dict(lock) if lock else None,
    }


# ---- decisions ----


def rollback_color(state: Mapping[str, Any]) -> str:
    """Where a rollback sends the traffic: back to where the last swap came from, while that colour does not
    already have all of it; else the idle colour."""
    last = state.get("last_swap") or {}
    origin = last.get("from")
    if origin in state["colors"] and state["colors"][origin]["weight"] < 100:
        return origin
    return state["idle"]


def deploy_size(state: Mapping[str, Any]) -> int:
    """How many tasks a deploy starts on the idle colour: as many as the active colour wants, at least one."""
    return max(int(state["colors"][state["active"]]["desired"]), 1)


def steps_to_take(steps: Iterable[int], current_weight: int) -> List[int]:
    """The canary steps above the colour's current share: a re-run moves nothing, and a swap resumed after an
    interruption never goes backwards."""
    return [int(step) for step in steps if int(step) > int(current_weight)]


def state_after_switch(
    state: Mapping[str, Any],
    *,
    weights: Optional[Mapping[str, int]] = None,
    test_weights: Optional[Mapping[str, int]] = None,
    health: Optional[Mapping[str, Mapping[str, Any]]] = None,
    record: Optional[Mapping[str, str]] = None,
    desired: Optional[Mapping[str, int]] = None,
    lock: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The state a switch left, from the state read before it and what the switch returned, without reading
    it all again: the listeners' weights as AWS described them after the write (``weights``,
    ``test_weights``), the health gate's count of healthy targets (``health``), the swap's record ``{from, to}``, the
    desired counts a retire set, and the lock (None: released). What is not given stays as it was read."""
    colors: Dict[str, Dict[str, Any]] = {}
    for color, before in state["colors"].items():
        after = dict(before)
        if weights and color in weights:
            after["weight"] = int(weights[color])
        if test_weights and color in test_weights:
            after["test_weight"] = int(test_weights[color])
        if health and isinstance(health.get(color), Mapping) and "healthy" in health[color]:
            after["healthy"] = int(health[color]["healthy"])
        if desired and color in desired:
            after["desired"] = int(desired[color])
        colors[color] = after
    last = record if record and record.get("from") else state.get("last_swap") or {}
    tags = {RECORD_FROM: last["from"], RECORD_TO: last["to"]} if last else {}
    new = platform_state(colors, test_port=state.get("test_port"), record=tags, alarms=state.get("alarms"), lock=lock)
    new["rollback"] = rollback_color(new)
    for key in ("load_balancer_arn", "listener_arn", "test_listener_arn"):
        if key in state:
            new[key] = state[key]
    return new


WAITING = "waiting"
DONE = "done"
FAILED = "failed"


class Verdict(NamedTuple):
    """Whether a colour's deploy is done, still going, or has failed for good (and why)."""

    status: str
    reason: str = ""


def judge_healthy(color: Mapping[str, Any], required: int, task_definition: Optional[str] = None) -> Verdict:
    """A colour is deployed when ``required`` targets are healthy, its primary ECS deployment (of
    ``task_definition`` when given) runs ``required`` tasks, and that deployment completed: ECS says so only
    once its tasks pass their container health check too. Counting the primary deployment's own tasks keeps
    targets of tasks just stopped, or a deployment ECS has not started yet, from passing for the new one. A
    deployment the circuit breaker failed, or rolled back to another task definition (whose targets would
    count too), has failed for good. Where ECS reports no rollout state, the counts decide."""
    primary = color.get("deployment") or {}
    running = primary.get("task_definition") or color.get("task_definition", "")
    if task_definition and running and running != task_definition:
        return Verdict(
            FAILED, f"the deployment of {task_definition} failed and ECS rolled the service back to {running}"
        )
    if primary.get("rollout_state") == "FAILED":
        return Verdict(FAILED, f"the deployment of {running} failed")
    tasks = int(primary["running"]) if primary else int(color["running"])
    if color["healthy"] >= required and tasks >= required and primary.get("rollout_state") != "IN_PROGRESS":
        return Verdict(DONE)
    return Verdict(WAITING)


def judge_drained(color: Mapping[str, Any]) -> Verdict:
    """A colour is drained when its service runs no task and none of its targets is healthy any more."""
    return Verdict(DONE) if int(color["running"]) == 0 and color["healthy"] == 0 else Verdict(WAITING)


def progress(color_name: str, color: Mapping[str, Any], required: Optional[int] = None) -> str:
    """One line on how far a colour is: healthy targets against what is needed, tasks, the deployment."""
    states: Dict[str, int] = {}
    for target in color["targets"]:
        states[target["state"]] = states.get(target["state"], 0) + 1
    targets = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none registered"
    healthy = f"healthy {color['healthy']}/{required}" if required is not None else f"healthy {color['healthy']}"
    primary = color.get("deployment") or {}
    rollout = f", deployment {primary.get('rollout_state')}" if primary.get("rollout_state") else ""
    return (
        f"{color_name}: {healthy}, tasks running {color['running']}/{color['desired']}"
        f" pending {color['pending']}{rollout}; targets {targets}"
    )


def stopped_task_view(task: Mapping[str, Any], container_name: Optional[str] = None) -> Dict[str, Any]:
    """What DescribeTasks says of a stopped task and its container (the one named, else the first):
    why it stopped, its exit code and reason, its health."""
    containers = task.get("containers") or [{}]
    container = next((c for c in containers if c.get("name") == container_name), containers[0])
    return {
        "task_id": str(task.get("taskArn", "")).rsplit("/", 1)[-1],
        "task_definition": short_name(task.get("taskDefinitionArn", "")),
        "stopped_reason": task.get("stoppedReason") or "",
        "stop_code": task.get("stopCode") or "",
        "container": container.get("name") or "",
        "exit_code": container.get("exitCode"),
        "container_reason": container.get("reason") or "",
        "health_status": container.get("healthStatus") or task.get("healthStatus") or "",
        "log": [],
    }


def stopped_task_line(view: Mapping[str, Any]) -> str:
    """One stopped task, for the diagnosis: its reason, its container's exit and its last log lines."""
    line = f"task {view['task_id'][:12]} ({view['task_definition']}): {view['stopped_reason'] or 'stopped'}"
    if view["exit_code"] is not None:
        line += f"; container {view['container']} exited with code {view['exit_code']}"
    if view["container_reason"] and view["container_reason"] != view["stopped_reason"]:
        line += f" ({view['container_reason']})"
    if view["health_status"] in ("UNHEALTHY",):
        line += f"; container health check {view['health_status']}"
    if view["log"]:
        line += f"; its last log lines: {[text[:LOG_LINE_CHARS] for text in view['log']]}"
    return line


def diagnosis(
    color_name: str,
    color: Mapping[str, Any],
    *,
    required: int,
    version: str,
    timeout: int,
    verdict: Verdict,
    events: Sequence[str] = (),
    stopped: Sequence[Mapping[str, Any]] = (),
) -> List[str]:
    """Why a colour did not get ``required`` healthy targets running ``version``: the cause first, then the
    service's counts, its deployments, its targets, the service's recent events (failures apart) and the
    newest stopped tasks (why each stopped, its exit code, its last log lines)."""
    first = f"{color_name} did not get {required} healthy target(s) running {version}"
    if verdict.status == FAILED:
        first += f": {verdict.reason}"
    elif color["healthy"] >= required:
        running = (color.get("deployment") or {}).get("task_definition") or color.get("task_definition", "")
        first += (
            f": its targets are healthy but the deployment of {running} did not complete within {timeout} s"
            " (its tasks fail their container health check, or ECS has not seen them healthy)"
        )
    else:
        first += f" within {timeout} s"
    deployments = (
        "; ".join(
            f"{d['status']} {d['task_definition']} {d['rollout_state']}"
            + (f" ({d['rollout_state_reason']})" if d["rollout_state_reason"] else "")
            for d in color["deployments"]
        )
        or "none"
    )
    targets = (
        "; ".join(
            f"{t['id']}:{t['port']} {t['state']}" + (f" ({t['reason']}: {t['description']})" if t["reason"] else "")
            for t in color["targets"]
        )
        or "none registered"
    )
    failures = [e for e in events if any(word in e.lower() for word in FAILURE_WORDS)]
    return [
        first + ".",
        f"service: desired {color['desired']}, running {color['running']}, pending {color['pending']}",
        f"deployments: {deployments}",
        f"targets: {targets}",
        f"recent service events, newest first: {list(events[:RECENT_EVENTS])}",
        f"failures among the service's events, newest first: {failures[:FAILURE_EVENTS]}",
    ] + [f"stopped task, newest first: {stopped_task_line(view)}" for view in stopped[:STOPPED_TASKS]]


# ---- how the status reads ----

STATUS_ROW = "{:<7} {:>6} {:>6}  {:<10} {:<28} {:>7} {:>7} {:>7}  {}"


def status_lines(state: Mapping[str, Any], name_prefix: str = "") -> List[str]:
    """The status table: a row per colour (the active one starred), the alarms, the last swap and the lock."""
    lines = [
        STATUS_ROW.format(
            "colour", "weight", "test", "version", "task definition", "desired", "running", "healthy", "deployed"
        )
    ]
    for color, c in state["colors"].items():
        test = "-" if c.get("test_weight") is None else f"{c['test_weight']}%"
        lines.append(
            STATUS_ROW.format(
                color + ("*" if color == state["active"] else ""),
                f"{c['weight']}%",
                test,
                c["version"],
                c["task_definition"] or "-",
                c["desired"],
                c["running"],
                c["healthy"],
                (c.get("deployed_at") or "")[:16],
            )
        )
    alarms = state.get("alarms") or {}
    strip = (name_prefix + "-") if name_prefix else ""
    named = [
        f"{name[len(strip) :] if strip and name.startswith(strip) else name} {state}" for name, state in alarms.items()
    ]
    lines.append("alarms: " + (", ".join(named) or "none"))
    last = state.get("last_swap")
    lines.append(f"last swap: {last['from']} -> {last['to']}" if last else "last swap: none recorded")
    lock = state.get("lock")
    if lock:
        lines.append(f"lock: held by {lock['owner']} ({lock['operation']}) for {int(lock['age_seconds'])} s")
    else:
        lines.append("lock: free")
    return lines


def traffic_lines(state: Optional[Mapping[str, Any]]) -> List[str]:
    """Two lines for a summary: the production listener's weights and each colour's desired count."""
    if not state:
        return ["weights 443    none", "services       none"]
    weights = " / ".join(f"{color} {weight}" for color, weight in state["weights"].items())
    services = " / ".join(
        f"{color} desired {c['desired']}" if c["exists"] else f"{color} none" for color, c in state["colors"].items()
    )
    return [f"weights 443    {weights}", f"services       {services}"]
