#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: bluegreen_info
version_added: 0.1.0
short_description: Read the whole blue/green state of an environment in one call, or wait for a colour
description:
  - Reads, in a handful of AWS calls, what a blue/green operation decides on - the weights of the production
    listener and of the test listener, and for each colour its target group's health, its ECS service
    (desired, running and pending tasks, deployments, task definition and the version it runs), its alarms;
    where the last swap came from (recorded on the production listener by
    M(ecs_production.platform.traffic_switch)); and who holds the environment's lock.
  - Decides which colour is active (the one with the highest weight on the production listener) and which is
    idle, and where a rollback would go.
  - With O(wait), polls until a colour is healthy (its targets and its ECS deployment) or drained, and on a
    deployment that failed for good, or at the timeout, fails with a diagnosis - the cause first, then the
    service's counts, deployments, targets and recent events, then the newest stopped tasks of the colour
    (why each stopped, its container's exit code and reason, and the last lines of its C(awslogs) log (what
    the process said before it exited or failed its health check)). Progress is returned in RV(progress),
    one line per change.
  - Never changes anything; it runs in check mode as it does otherwise.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  load_balancer_arn:
    description:
      - ARN of the Application Load Balancer whose listeners carry the traffic.
      - Exactly one of O(load_balancer_arn) and O(load_balancer_name) is required; the ARN saves a call.
    type: str
  load_balancer_name:
    description:
      - Name of the Application Load Balancer.
    type: str
  port:
    description:
      - Port of the production listener.
    type: int
    default: 443
  test_port:
    description:
      - Port of the test listener (which sends everything to the colour under test); V(0) when there is none.
    type: int
    default: 0
  target_groups:
    description:
      - "The target group of each colour, by name or ARN, in the colours' order, such as
        C({blue: prod-blue, green: prod-green}). Two to five colours."
    type: dict
    required: true
  services:
    description:
      - "The ECS service of each colour, as C(CLUSTER/SERVICE), such as C({blue: prod/prod-blue})."
      - A colour without a service, or whose service does not exist, is reported with C(exists=false) in
        RV(state.colors).
    type: dict
    default: {}
  container_name:
    description:
      - The container whose C(APP_VERSION) environment variable (else image tag) is the colour's version.
      - The first container of the task definition when not given.
    type: str
  alarms:
    description:
      - "The CloudWatch alarms of each colour, such as C({blue: [prod-blue-5xx], green: [prod-green-5xx]})."
      - Their states are returned by colour and all together in RV(state.alarms); a missing alarm is V(MISSING).
    type: dict
    default: {}
  lock_parameter:
    description:
      - Name of the SSM parameter of the environment's lock (M(ecs_production.platform.environment_lock)).
      - Its holder is returned in RV(state.lock).
    type: str
  versions:
    description:
      - Whether to read the task definition each colour runs, for its version (one call per task definition).
      - Without, each colour's C(version) in RV(state.colors) is V(-).
    type: bool
    default: true
  events:
    description:
      - How many of each service's most recent events to return.
    type: int
    default: 0
  wait:
    description:
      - Wait for a colour, then return the state; fail with a diagnosis if it does not get there.
    type: dict
    suboptions:
      color:
        description: The colour to wait for, a key of O(target_groups).
        type: str
        required: true
      until:
        description:
          - V(healthy) - O(wait.count) healthy targets in its target group and the ECS deployment of
            O(wait.task_definition) (its primary one when not given) completed, which ECS reports once the
            tasks pass their container health check too. A deployment that the circuit breaker failed, or
            rolled back to another task definition, fails the wait at once.
          - V(drained) - its service runs no task.
        type: str
        choices: [healthy, drained]
        required: true
      count:
        description: Healthy targets needed with O(wait.until=healthy); the service's desired count (at least 1)
          when not given.
        type: int
      task_definition:
        description: The task definition (C(family:revision) or ARN) whose deployment must complete.
        type: str
      timeout:
        description: Seconds to wait before failing.
        type: int
        default: 600
      interval:
        description: Seconds between two looks.
        type: int
        default: 5
notes:
  - "AWS calls, without O(wait): C(DescribeListeners) (and C(DescribeLoadBalancers) with O(load_balancer_name)),
    C(DescribeTags) of the production listener, C(DescribeTargetGroups) unless every target group is given by
    ARN, one C(DescribeTargetHealth) per colour, one C(DescribeServices) per cluster, one
    C(DescribeTaskDefinition) per task definition in use, one C(DescribeAlarms), one C(GetParameter)."
  - "With O(wait), when the wait fails: C(ListTasks) and C(DescribeTasks) of the colour's stopped tasks and one
    C(GetLogEvents) per quoted task whose container logs with C(awslogs) (C(logs:GetLogEvents) on the log
    group; without it, or when the stream is gone, the diagnosis goes without the log lines)."
  - Every option is checked before any AWS call.
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Read the blue/green state
  ecs_production.platform.bluegreen_info:
    load_balancer_name: prod-alb
    test_port: 9443
    target_groups: {blue: prod-blue, green: prod-green}
    services: {blue: prod/prod-blue, green: prod/prod-green}
    alarms:
      blue: [prod-blue-5xx, prod-blue-unhealthy-hosts]
      green: [prod-green-5xx, prod-green-unhealthy-hosts]
    lock_parameter: /app/prod/lock
  register: bluegreen

- name: Deploy onto the idle colour
  ansible.builtin.debug:
    msg: "{{ bluegreen.state.idle }} runs {{ bluegreen.state.colors[bluegreen.state.idle].version }}"

- name: Wait until green has two healthy targets running app-green:7
  ecs_production.platform.bluegreen_info:
    load_balancer_name: prod-alb
    target_groups: {blue: prod-blue, green: prod-green}
    services: {blue: prod/prod-blue, green: prod/prod-green}
    events: 20
    wait:
      color: green
      until: healthy
      count: 2
      task_definition: app-green:7
      timeout: 600
"""

RETURN = r"""
state:
  description: The blue/green state.
  returned: always
  type: dict
  contains:
    colors:
      description:
        - Each colour, in the order of O(target_groups) - C(weight) and C(test_weight) (its share of the production
          and of the test listener; C(test_weight) null without a test listener), C(target_group),
          C(target_group_arn), C(service), C(exists), C(desired), C(running), C(pending), C(healthy) (healthy
          targets), C(targets) (each with C(id), C(port), C(state), C(reason), C(description)),
          C(task_definition) (C(family:revision)), C(version), C(deployment) (the primary deployment, with
          C(status), C(task_definition), C(rollout_state), C(rollout_state_reason), C(created_at)),
          C(deployments), C(deployed_at), C(alarms) (name to state) and C(events) (newest first).
      type: dict
    weights:
      description: The production listener's weight of each colour.
      type: dict
      sample: {blue: 100, green: 0}
    test_weights:
      description: The test listener's weight of each colour; empty without a test listener.
      type: dict
    test_port:
      description: The test listener's port; null without one.
      type: int
    active:
      description: The colour with the highest weight on the production listener (the first on a tie).
      type: str
      sample: blue
    idle:
      description: The first colour that is not the active one - where a deploy goes.
      type: str
      sample: green
    rollback:
      description: Where a rollback sends the traffic - back where the last swap came from, else the idle colour.
      type: str
      sample: green
    last_swap:
      description: The last swap recorded on the production listener, C({from, to}); null when none is.
      type: dict
      sample: {from: green, to: blue}
    alarms:
      description: The state of every alarm of O(alarms), in order; V(MISSING) for one that does not exist.
      type: dict
      sample: {prod-blue-5xx: OK}
    lock:
      description: The holder of the environment's lock (C(owner), C(operation), C(acquired_at), C(expires_at),
        C(age_seconds), C(stale), and C(host), C(pid), C(started) of the holding process when the lock records
        one); null when it is free or O(lock_parameter) is not given.
      type: dict
    load_balancer_arn:
      description: ARN of the load balancer.
      type: str
    listener_arn:
      description: ARN of the production listener.
      type: str
    test_listener_arn:
      description: ARN of the test listener; empty without one.
      type: str
waited:
  description: Seconds spent waiting with O(wait).
  returned: when O(wait) is given
  type: float
progress:
  description: With O(wait), how far the colour got, one line per change, each prefixed with the seconds waited.
  returned: when O(wait) is given
  type: list
  elements: str
  sample: ["0 s green: healthy 0/2, tasks running 0/2 pending 2, deployment IN_PROGRESS; targets none registered"]
diagnosis:
  description:
    - With O(wait), why the colour did not get there, line by line (also the failure's message).
    - The cause, the service's counts, deployments, targets, recent events and failures among them, then a
      line per stopped task (newest first, up to 3) with its stopped reason, exit code and last log lines.
  returned: when the wait fails
  type: list
  elements: str
"""

from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.ecs_production.platform.plugins.module_utils import bluegreen as bg
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Clock
from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import ELBV2_RETRY
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import describe_target_health
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_forward_action
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import find_load_balancer
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import forward_weights
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import get_tags
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import is_arn
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import resolve_target_group_arns
from ansible_collections.ecs_production.platform.plugins.module_utils.elbv2_listeners import target_group_name
from ansible_collections.ecs_production.platform.plugins.module_utils.lock import read_lock
from ansible_collections.ecs_production.platform.plugins.module_utils.ssm import SSM_RETRY

# ECS and CloudWatch answer "ThrottlingException"/"Throttling"; AWSRetry retries only the latter by default.
ECS_RETRY = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["ThrottlingException"])
CLOUDWATCH_RETRY = AWSRetry.jittered_backoff(retries=10)
MIN_COLORS = 2
MAX_COLORS = 5
MAX_ALARMS = 100  # DescribeAlarms takes up to 100 names
MISSING = "MISSING"
MAX_PORT = 65535
LOCK_STALE_AFTER = 900  # only for a lock value environment_lock did not write (its own carry their expiry)


class EcsErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["ClusterNotFoundException", "ServiceNotFoundException"])


class TaskDefinitionErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ClientException")


class CloudWatchErrorHandler(AWSErrorHandler):
    pass


# ---- Input (no AWS call) ----


def parse_service(value: Any) -> Optional[Dict[str, str]]:
    if not isinstance(value, str):
        return None
    cluster, _slash, service = value.strip().rpartition("/")
    if not cluster.strip() or not service.strip():
        return None
    return {"cluster": cluster.strip(), "service": service.strip()}


def check_params(params: Mapping[str, Any]) -> List[str]:
    """Problems with the options that AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    target_groups = params.get("target_groups") or {}
    if not MIN_COLORS <= len(target_groups) <= MAX_COLORS:
        problems.append(f"target_groups must name {MIN_COLORS} to {MAX_COLORS} colours, not {len(target_groups)}")
    for color, ref in target_groups.items():
        if not isinstance(ref, str) or not ref.strip():
            problems.append(f"target_groups.{color} must be a target group name or ARN, not {ref!r}")
    problems.extend(_check_services(params.get("services") or {}, target_groups))
    problems.extend(_check_alarms(params.get("alarms") or {}, target_groups))
    if not 1 <= params.get("port", 443) <= MAX_PORT:
        problems.append(f"port must be a TCP port (1-{MAX_PORT}), not {params['port']}")
    if not 0 <= params.get("test_port", 0) <= MAX_PORT:
        problems.append(f"test_port must be a TCP port (1-{MAX_PORT}) or 0 for none, not {params['test_port']}")
    if params.get("events", 0) < 0:
        problems.append(f"events must be 0 or more, not {params['events']}")
    problems.extend(_check_wait(params.get("wait"), target_groups, params.get("services") or {}))
    return problems


def _check_services(services: Mapping[str, Any], target_groups: Mapping[str, Any]) -> List[str]:
    problems = [
        f"services: {c!r} is not a colour of target_groups ({', '.join(target_groups)})"
        for c in services
        if c not in target_groups
    ]
    problems.extend(
        f"services.{color} must be CLUSTER/SERVICE, not {value!r}"
        for color, value in services.items()
        if parse_service(value) is None
    )
    return problems


def _check_alarms(alarms: Mapping[str, Any], target_groups: Mapping[str, Any]) -> List[str]:
    problems = [
        f"alarms: {c!r} is not a colour of target_groups ({', '.join(target_groups)})"
        for c in alarms
        if c not in target_groups
    ]
    names = set()
    for color, value in alarms.items():
        if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
            problems.append(f"alarms.{color} must be a list of alarm names, not {value!r}")
        else:
            names.update(value)
    if len(names) > MAX_ALARMS:
        problems.append(f"alarms names {len(names)} alarms; at most {MAX_ALARMS}")
    return problems


def _check_wait(wait: Optional[Mapping[str, Any]], target_groups: Mapping[str, Any], services: Mapping[str, Any]):
    if not wait:
        return []
    problems = []
    color = wait.get("color")
    if color not in target_groups:
        problems.append(f"wait.color {color!r} is not a colour of target_groups ({', '.join(target_groups)})")
    elif color not in services:
        problems.append(f"wait.color {color!r} has no service in services: there is nothing to wait for")
    if wait.get("count") is not None and wait["count"] < 1:
        problems.append(f"wait.count must be at least 1, not {wait['count']}")
    if wait.get("timeout", 0) < 0:
        problems.append(f"wait.timeout must be 0 or more seconds, not {wait['timeout']}")
    if wait.get("interval", 1) < 1:
        problems.append(f"wait.interval must be at least 1 second, not {wait['interval']}")
    return problems


# ---- AWS ----


@EcsErrorHandler.list_error_handler("describe ECS services", default_value=[])
def describe_services(ecs, cluster: str, names: List[str], events: bool) -> List[Dict[str, Any]]:
    found = ecs.describe_services(aws_retry=True, cluster=cluster, services=names)["services"]
    if not events:
        for service in found:
            service.pop("events", None)
    return found


@TaskDefinitionErrorHandler.list_error_handler("describe task definition", default_value=None)
def describe_task_definition(ecs, reference: str) -> Optional[Dict[str, Any]]:
    return ecs.describe_task_definition(aws_retry=True, taskDefinition=reference)["taskDefinition"]


@EcsErrorHandler.list_error_handler("describe stopped tasks", default_value=[])
def describe_stopped_tasks(ecs, cluster: str, service: str) -> List[Dict[str, Any]]:
    """The service's stopped tasks that ECS still lists, newest first."""
    arns = ecs.list_tasks(aws_retry=True, cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(aws_retry=True, cluster=cluster, tasks=arns[:100])["tasks"]
    return sorted(tasks, key=lambda t: str(t.get("stoppedAt") or t.get("createdAt") or ""), reverse=True)


@AWSErrorHandler.common_error_handler("read the task's log")
def get_log_events(logs, group: str, stream: str) -> List[Dict[str, Any]]:
    return logs.get_log_events(
        aws_retry=True, logGroupName=group, logStreamName=stream, limit=bg.LOG_LINES, startFromHead=False
    )["events"]


def last_log_lines(module: AnsibleAWSModule, definition: Optional[Mapping[str, Any]], container: str, task_id: str):
    """The last lines of a task's container log when it logs with awslogs; [] when they cannot be read."""
    containers = (definition or {}).get("containerDefinitions") or []
    found = next((c for c in containers if c.get("name") == container), None)
    logging = (found or {}).get("logConfiguration") or {}
    options = logging.get("options") or {}
    if logging.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
        return []
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{container}/{task_id}" if prefix else task_id
    region = {"region": options["awslogs-region"]} if options.get("awslogs-region") else {}
    logs = module.client("logs", retry_decorator=CLOUDWATCH_RETRY, **region)
    try:
        events = get_log_events(logs, options["awslogs-group"], stream)
    except AnsibleAWSError:
        return []  # no permission, or the stream is gone: the diagnosis goes without it
    return [str(e.get("message", "")).rstrip() for e in events if str(e.get("message", "")).strip()]


@CloudWatchErrorHandler.list_error_handler("describe alarms", default_value={})
def alarm_states(cloudwatch, names: List[str]) -> Dict[str, str]:
    found = cloudwatch.describe_alarms(aws_retry=True, AlarmNames=names, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    return {
        alarm["AlarmName"]: alarm["StateValue"]
        for kind in ("MetricAlarms", "CompositeAlarms")
        for alarm in found.get(kind) or []
    }


@AWSErrorHandler.list_error_handler("describe listeners", default_value=[])
def describe_listeners(elbv2, load_balancer_arn: str) -> List[Dict[str, Any]]:
    return paginated_query_with_retries(elbv2, "describe_listeners", ELBV2_RETRY, LoadBalancerArn=load_balancer_arn)[
        "Listeners"
    ]


class Reader:
    """Reads the blue/green state; the parts that do not change while waiting are read once."""

    def __init__(self, module: AnsibleAWSModule):
        self.module = module
        self.params = module.params
        self.elbv2 = module.client("elbv2", retry_decorator=ELBV2_RETRY)
        self._ecs = None
        self.arns: Dict[str, str] = {}
        self.listeners: Dict[int, Dict[str, Any]] = {}
        self.load_balancer_arn = ""
        self.task_definitions: Dict[str, Optional[Dict[str, Any]]] = {}

    @property
    def ecs(self):
        if self._ecs is None:
            self._ecs = self.module.client("ecs", retry_decorator=ECS_RETRY)
        return self._ecs

    def locate(self) -> None:
        """The load balancer, its listeners and the colours' target groups."""
        arn = self.params.get("load_balancer_arn")
        if not arn:
            found = find_load_balancer(self.elbv2, name=self.params["load_balancer_name"])
            if found is None:
                raise Refused(f"Load balancer {self.params['load_balancer_name']} not found: provision first")
            arn = found["LoadBalancerArn"]
        self.load_balancer_arn = arn
        self.listeners = {listener["Port"]: listener for listener in describe_listeners(self.elbv2, arn)}
        if self.params["port"] not in self.listeners:
            raise Refused(f"Load balancer {arn.split('/')[-2]} has no listener on port {self.params['port']}")
        refs = self.params["target_groups"]
        if all(is_arn(ref) for ref in refs.values()):
            self.arns = dict(refs)
        else:
            resolved = resolve_target_group_arns(self.elbv2, refs.values())
            self.arns = {color: resolved[ref] for color, ref in refs.items()}

    def listener_weights(self, port: int) -> Optional[Dict[str, int]]:
        listener = self.listeners.get(port)
        if listener is None or find_forward_action(listener.get("DefaultActions") or []) is None:
            return None
        by_arn = forward_weights(listener["DefaultActions"])
        return {color: by_arn.get(arn, 0) for color, arn in self.arns.items()}

    def services(self, with_events: bool) -> Dict[str, Dict[str, Any]]:
        refs = {color: parse_service(value) for color, value in (self.params.get("services") or {}).items()}
        clusters: Dict[str, List[str]] = {}
        for ref in refs.values():
            clusters.setdefault(ref["cluster"], []).append(ref["service"])
        found: Dict[str, Dict[str, Any]] = {}
        for cluster, names in clusters.items():
            for service in describe_services(self.ecs, cluster, names, with_events):
                if service.get("status") == "ACTIVE":
                    found[service["serviceName"]] = service
        return {color: found[ref["service"]] for color, ref in refs.items() if ref["service"] in found}

    def task_definition(self, arn: str) -> Optional[Dict[str, Any]]:
        if arn not in self.task_definitions:
            self.task_definitions[arn] = describe_task_definition(self.ecs, arn)
        return self.task_definitions[arn]

    def colors(self, alarm_states: Mapping[str, str], colors: Optional[List[str]] = None) -> Dict[str, Dict[str, Any]]:
        """Each colour's state (only ``colors`` when given, else all)."""
        weights = self.listener_weights(self.params["port"]) or {}
        test_weights = self.listener_weights(self.params["test_port"]) if self.params["test_port"] else None
        wanted = colors or list(self.arns)
        services = self.services(with_events=self.params["events"] > 0) if self.params.get("services") else {}
        state = {}
        for color in wanted:
            service = services.get(color)
            td_arn = (service or {}).get("taskDefinition")
            state[color] = bg.color_state(
                weight=weights.get(color, 0),
                test_weight=None if test_weights is None else test_weights.get(color, 0),
                target_group=target_group_name(self.arns[color]),
                target_group_arn=self.arns[color],
                targets=[bg.target_view(d) for d in describe_target_health(self.elbv2, self.arns[color])],
                service_name=(self.params.get("services") or {}).get(color),
                service=service,
                task_definition=self.task_definition(td_arn) if td_arn and self.params["versions"] else None,
                container_name=self.params.get("container_name"),
                alarms={
                    name: alarm_states.get(name, MISSING) for name in (self.params.get("alarms") or {}).get(color, [])
                },
                events=self.params["events"],
            )
        return state

    def stopped_tasks(self, color: str) -> List[Dict[str, Any]]:
        """The colour's newest stopped tasks (see bg.stopped_task_view), each with its last log lines."""
        ref = parse_service((self.params.get("services") or {}).get(color))
        if ref is None:
            return []
        try:
            stopped = describe_stopped_tasks(self.ecs, ref["cluster"], ref["service"])
        except AnsibleAWSError:
            return []  # e.g. no ecs:ListTasks for this identity: the diagnosis goes without the stopped tasks
        views = []
        for task in stopped[: bg.STOPPED_TASKS]:
            view = bg.stopped_task_view(task, self.params.get("container_name"))
            definition = (
                self.task_definition(task.get("taskDefinitionArn", "")) if task.get("taskDefinitionArn") else None
            )
            view["log"] = last_log_lines(self.module, definition, view["container"], view["task_id"])
            views.append(view)
        return views

    def alarm_states(self) -> Dict[str, str]:
        names = list(dict.fromkeys(name for names in (self.params.get("alarms") or {}).values() for name in names))
        if not names:
            return {}
        cloudwatch = self.module.client("cloudwatch", retry_decorator=CLOUDWATCH_RETRY)
        found = alarm_states(cloudwatch, names)
        return {name: found.get(name, MISSING) for name in names}

    def lock(self, clock: Clock) -> Optional[Dict[str, Any]]:
        name = self.params.get("lock_parameter")
        if not name:
            return None
        held = read_lock(self.module.client("ssm", retry_decorator=SSM_RETRY), name, LOCK_STALE_AFTER)
        return None if held is None else held.describe(clock.now())

    def state(self, clock: Clock) -> Dict[str, Any]:
        alarms = self.alarm_states()
        state = bg.platform_state(
            self.colors(alarms),
            test_port=self.params["test_port"] if self.params["test_port"] in self.listeners else None,
            record=get_tags(self.elbv2, self.listeners[self.params["port"]]["ListenerArn"]),
            alarms=alarms,
            lock=self.lock(clock),
        )
        state["rollback"] = bg.rollback_color(state)
        state["load_balancer_arn"] = self.load_balancer_arn
        state["listener_arn"] = self.listeners[self.params["port"]]["ListenerArn"]
        test = self.listeners.get(self.params["test_port"]) if self.params["test_port"] else None
        state["test_listener_arn"] = test["ListenerArn"] if test else ""
        return state


def wait(reader: Reader, state: Dict[str, Any], options: Mapping[str, Any], clock: Clock) -> Dict[str, Any]:
    """Poll the colour until it gets there; the result's ``diagnosis`` says why when it does not."""
    color = options["color"]
    healthy = options["until"] == "healthy"
    started = clock.monotonic()
    wanted_td = bg.short_name(options.get("task_definition") or "") or None
    progress: List[str] = []
    current = state["colors"][color]
    while True:
        required = options.get("count") or max(int(current["desired"]), 1)
        verdict = bg.judge_healthy(current, required, wanted_td) if healthy else bg.judge_drained(current)
        waited = clock.monotonic() - started
        line = bg.progress(color, current, required if healthy else None)
        if not progress or not progress[-1].endswith(line):
            progress.append(f"{round(waited)} s {line}")
        if verdict.status != bg.WAITING or waited >= options["timeout"]:
            break
        clock.sleep(min(options["interval"], max(options["timeout"] - waited, 0.1)))
        current = reader.colors({}, [color])[color]
    state["colors"][color] = dict(current, alarms=state["colors"][color]["alarms"])
    result: Dict[str, Any] = {"waited": round(clock.monotonic() - started, 1), "progress": progress}
    if verdict.status != bg.DONE:
        if healthy:
            version = current["version"]
            if wanted_td and current["task_definition"] != wanted_td:
                wanted = reader.task_definition(options["task_definition"])
                version = bg.container_version(wanted, reader.params.get("container_name"))
            result["diagnosis"] = bg.diagnosis(
                color,
                current,
                required=required,
                version=version,
                timeout=options["timeout"],
                verdict=verdict,
                events=current["events"],
                stopped=reader.stopped_tasks(color),
            )
        else:
            result["diagnosis"] = [
                f"{color} still runs {current['running']} task(s) after {options['timeout']} s.",
                f"service: desired {current['desired']}, running {current['running']}, pending {current['pending']}",
            ]
    return result


def main() -> None:
    argument_spec = dict(
        load_balancer_arn=dict(type="str"),
        load_balancer_name=dict(type="str"),
        port=dict(type="int", default=443),
        test_port=dict(type="int", default=0),
        target_groups=dict(type="dict", required=True),
        services=dict(type="dict", default={}),
        container_name=dict(type="str"),
        alarms=dict(type="dict", default={}),
        lock_parameter=dict(type="str", no_log=False),
        versions=dict(type="bool", default=True),
        events=dict(type="int", default=0),
        wait=dict(
            type="dict",
            options=dict(
                color=dict(type="str", required=True),
                until=dict(type="str", required=True, choices=["healthy", "drained"]),
                count=dict(type="int"),
                task_definition=dict(type="str"),
                timeout=dict(type="int", default=600),
                interval=dict(type="int", default=5),
            ),
        ),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["load_balancer_arn", "load_balancer_name"]],
        mutually_exclusive=[["load_balancer_arn", "load_balancer_name"]],
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")

    clock = Clock()
    try:
        reader = Reader(module)
        reader.locate()
        state = reader.state(clock)
        result: Dict[str, Any] = {"changed": False, "state": state}
        if module.params.get("wait"):
            result.update(wait(reader, state, module.params["wait"], clock))
    except Refused as e:
        module.fail_json(msg=e.message, changed=False)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)

    if result.get("diagnosis"):
        module.fail_json(msg=" ".join(result["diagnosis"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
