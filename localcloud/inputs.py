"""The input matrix: one wrong value of every variable of every role's argument specs, and how to try it.

Shared by ``tests/e2e/test_inputs.py`` (every case, each must be refused before any AWS call, naming
the variable) and ``bench/reliability.py`` (a sample, counted). ``WRONG`` holds one wrong value per
variable (a wrong type, a value outside the choices, out of range, or not matching the pattern AWS
accepts); ``NOT_SET_BY_USERS`` the variables users do not set, each with the reason; ``SHORT_NAMES``
the operator's ``-e`` names the playbooks wire into role variables.

``refuse_all`` tries every case in batches: one run carries the wrong values of one role's variables, and
credits those its failure messages make the subject of a refusal (``refused_variables``); the rest go
into the next run, two variables whose checks read each other never together; what batches stop
crediting runs alone, checked as one case (``case_problems``, as ``refusal_problems`` does for one case).
"""

from __future__ import annotations

import json
import re
import textwrap
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localcloud.harness import REPO, Run, run_playbook

ROLES = REPO / "roles"

# The first task of each playbook that calls AWS: a refused input must stop the run before it starts.
FIRST_AWS_TASKS = ("Ask AWS who we are", "Take the environment's lock", "Break the environment's lock")

# Variables that users do not set: the roles' outputs handed to later entry points, and values the
# playbooks set themselves. Each with the reason it is not in WRONG.
NOT_SET_BY_USERS = {
    "platform_operation": "set by each playbook (provision, teardown, 'swap to green'); a label in the lock's value",
    "platform_summary_load_balancer_arn": "the summary's input, alb__output.arn, read back after everything ran",
    "platform_summary_load_balancer_dns": "the summary's input, alb__output.dns_name, read back after everything ran",
    "platform_summary_target_groups": "the summary's input, alb__output.target_groups, read back after everything ran",
    "platform_summary_services": "the summary's input, ecs__output.service_refs, read back after everything ran",
    "platform_summary_database": "the summary's input, rds__output, read back after everything ran",
    "ecs_color": "set by the bluegreen role's deploy from bluegreen_color (checked) or the idle colour it read",
    "ecs_version": "set by the bluegreen role's deploy from bluegreen_version (checked)",
    "ecs_service_desired_count": "set by the bluegreen role's deploy and switch from the counts they read",
    "iam_ecs_exec": "set by playbooks/vars/platform.yml from ecs_enable_execute_command (checked)",
    "bluegreen_autoscaling": "set by playbooks/vars/platform.yml from ecs_autoscaling (checked)",
    "cicd_autoscaling": "set by playbooks/vars/platform.yml from ecs_autoscaling (checked)",
    "ecs_scaling_colors": "set by the bluegreen role (deploy, switch) for the ecs role's scaling entry point",
}

# One wrong value per variable. Bluegreen variables run through the swap playbook (with a valid colour,
# so that only the variable under test is wrong); bluegreen_version through deploy; the rest through provision.
NOT_A_BOOL = "maybe"
WRONG: dict[str, object] = {
    # platform
    "platform_project": "Bad_Project",
    "platform_environment": "Bad_Env",
    "platform_region": "mars-north-1x",
    "platform_extra_tags": [1],
    "platform_check_identity": NOT_A_BOOL,
    "platform_roles": ["network", "nosuch"],
    "platform_lock_owner": "",
    "platform_lock_wait": -1,
    "platform_lock_stale_after": 10,
    "platform_lock_break": NOT_A_BOOL,
    "platform_allow_disruptive": NOT_A_BOOL,
    "platform_lock_tags": [1],
    # network
    "network_state": "gone",
    "network_name_prefix": "Bad_Prefix",
    "network_tags": {"Project": "ecs-prod"},
    "network_vpc_cidr": "10.0.0.0/33",
    "network_availability_zones": ["us-east-1a"],
    "network_public_subnet_cidrs": ["10.0.1.0/24", "10.0.1.128/25"],
    "network_private_subnet_cidrs": ["10.0.11.0/24", "nonsense"],
    "network_alb_ingress_cidrs": ["0.0.0.0/33"],
    "network_alb_ingress_ports": [0],
    "network_alb_test_port": 70000,
    "network_alb_test_ingress_cidrs": ["nonsense"],
    "network_app_port": 0,
    "network_db_port": 70000,
    "network_tasks_https_egress_cidrs": ["10.0.0.1/33"],
    "network_app_subnets_private": NOT_A_BOOL,
    "network_app_subnet_cidrs": ["10.0.21.0/24", "nonsense"],
    "network_nat_gateways": "two",
    "network_vpc_endpoints": NOT_A_BOOL,
    "network_vpc_endpoint_services": ["s3"],
    "network_region": "mars-north-1x",
    "network_delete_timeout": -5,
    # secrets
    "secrets_state": "gone",
    "secrets_name_prefix": "Bad_Prefix",
    "secrets_tags": {},
    "secrets_parameter_path": "no-slash",
    "secrets_kms_alias": "alias/aws/ebs",
    "secrets_kms_key_rotation": NOT_A_BOOL,
    "secrets_kms_deletion_window_days": 3,
    # iam
    "iam_state": "gone",
    "iam_name_prefix": "Bad_Prefix",
    "iam_tags": {},
    "iam_path": "no-slash",
    "iam_account_id": "123",
    "iam_region": "mars",
    "iam_partition": "nonsense",
    "iam_parameter_path": "no-slash",
    "iam_kms_key_arn": "not-an-arn",
    "iam_execution_managed_policies": ["not-an-arn"],
    "iam_permissions_boundary": "not-an-arn",
    # certificate
    "certificate_state": "gone",
    "certificate_name_prefix": "Bad_Prefix",
    "certificate_tags": {},
    "certificate_domain": "Not A Domain",
    "certificate_host": "bad host",
    "certificate_hosted_zone_name": "bad zone!",
    "certificate_wait_timeout": 0,
    "certificate_self_signed_common_name": "x" * 65,
    "certificate_self_signed_days": 1,
    "certificate_self_signed_renew_days": 0,
    # alb
    "alb_waf_enabled": NOT_A_BOOL,
    "alb_waf_rate_limit": 5,
    "alb_state": "gone",
    "alb_name_prefix": "Bad_Prefix",
    "alb_tags": {},
    "alb_vpc_id": "not-a-vpc",
    "alb_subnet_ids": ["not-a-subnet"],
    "alb_security_group_id": "not-a-group",
    "alb_certificate_arn": "not-an-arn",
    "alb_target_port": 0,
    "alb_health_check_path": "health",
    "alb_health_check_interval": 1,
    "alb_health_check_timeout": 1,
    "alb_healthy_threshold": 11,
    "alb_unhealthy_threshold": 1,
    "alb_health_check_matcher": "abc",
    "alb_deregistration_delay": 4000,
    "alb_ssl_policy": "nonsense",
    "alb_idle_timeout": 0,
    "alb_deletion_protection": NOT_A_BOOL,
    "alb_initial_color": "red",
    "alb_test_listener_enabled": NOT_A_BOOL,
    "alb_test_listener_port": 443,
    "alb_dns_zone_name": "example.com",
    "alb_dns_record_name": "bad name!",
    "alb_alarms_enabled": NOT_A_BOOL,
    "alb_alarm_5xx_rate_percent": 100,
    "alb_alarm_p99_seconds": 0,
    "alb_alarm_elb_5xx_threshold": -1,
    "alb_alarm_period": 45,
    "alb_alarm_evaluation_periods": 0,
    "alb_alarm_actions": ["not-an-arn"],
    # rds
    "rds_state": "gone",
    "rds_name_prefix": "Bad_Prefix",
    "rds_tags": {},
    "rds_subnet_ids": ["not-a-subnet"],
    "rds_security_group_id": "not-a-group",
    "rds_kms_key_arn": "not-an-arn",
    "rds_parameter_path": "no-slash",
    "rds_engine": "mysql",
    "rds_engine_major_version": "fifteen",
    "rds_instance_class": "nonsense",
    "rds_allocated_storage": 10,
    "rds_max_allocated_storage": 70000,
    "rds_storage_type": "ssd",
    "rds_multi_az": NOT_A_BOOL,
    "rds_read_replica": NOT_A_BOOL,
    "rds_backup_retention_days": 40,
    "rds_allow_disruptive": NOT_A_BOOL,
    "rds_deletion_protection": NOT_A_BOOL,
    "rds_force_ssl": NOT_A_BOOL,
    "rds_log_min_duration_statement": -2,
    "rds_performance_insights": NOT_A_BOOL,
    "rds_performance_insights_retention_days": 30,
    "rds_skip_final_snapshot": NOT_A_BOOL,
    "rds_delete_snapshots": NOT_A_BOOL,
    "rds_restore_from_snapshot": "1-not--a-snapshot-",
    "rds_db_name": "1bad",
    "rds_master_username": "postgres",
    "rds_port": 80,
    "rds_password_parameter": "no-slash",
    "rds_password_length": 4,
    "rds_wait": NOT_A_BOOL,
    "rds_wait_timeout": 0,
    "rds_wait_poll_seconds": 0,
    # ecs
    "ecs_state": "gone",
    "ecs_name_prefix": "Bad_Prefix",
    "ecs_tags": {},
    "ecs_region": "mars",
    "ecs_account_id": "123",
    "ecs_subnet_ids": ["not-a-subnet"],
    "ecs_security_group_id": "not-a-group",
    "ecs_execution_role_arn": "not-an-arn",
    "ecs_task_role_arn": "not-an-arn",
    "ecs_target_groups": [1],
    "ecs_database": [1],
    "ecs_assign_public_ip": NOT_A_BOOL,
    "ecs_repository_name": "Bad Repo",
    "ecs_repository_keep_images": 0,
    "ecs_initial_version": "bad version!",
    "ecs_initial_desired_counts": {"blue": -1, "green": 0},
    "ecs_container_name": "bad name!",
    "ecs_container_port": 0,
    "ecs_task_cpu": "300",
    "ecs_task_memory": "100",
    "ecs_app_workers": 0,
    "ecs_app_environment": [1],
    "ecs_db_sslmode": "always",
    "ecs_db_ssl_root_cert": "relative/ca.pem",
    "ecs_container_health_check": {"command": ["CMD"]},
    "ecs_health_check_grace_period": -1,
    "ecs_stop_timeout": 200,
    "ecs_container_insights": "on",
    "ecs_enable_execute_command": NOT_A_BOOL,
    "ecs_autoscaling": NOT_A_BOOL,
    "ecs_autoscaling_min_capacity": 0,
    "ecs_autoscaling_max_capacity": 0,
    "ecs_autoscaling_requests_per_target": -1,
    "ecs_autoscaling_cpu_target": 101,
    "ecs_autoscaling_scale_out_cooldown": -1,
    "ecs_autoscaling_scale_in_cooldown": 90000,
    "ecs_load_balancer_arn": "not-an-arn",
    "ecs_deployment_minimum_healthy_percent": 150,
    "ecs_deployment_maximum_percent": 50,
    "ecs_log_retention_days": 8,
    # observability
    "observability_state": "gone",
    "observability_name_prefix": "Bad_Prefix",
    "observability_tags": {},
    "observability_region": "mars-1",
    "observability_dashboard_enabled": NOT_A_BOOL,
    "observability_db_alarms_enabled": NOT_A_BOOL,
    "observability_db_cpu_percent": 100,
    "observability_db_free_storage_gib": 0,
    "observability_db_connections": 0,
    "observability_alarm_period": 45,
    "observability_alarm_evaluation_periods": 0,
    "observability_alarm_actions": ["not-an-arn"],
    "observability_alarm_5xx_rate_percent": 0,
    "observability_load_balancer_arn": "not-an-arn",
    "observability_target_groups": {"red": "not-an-arn"},
    "observability_db_instance_identifier": "9-starts-with-a-digit",
    "observability_cluster_name": "bad name!",
    "observability_services": {"red": "x"},
    # bluegreen
    "bluegreen_operation": "nonsense",
    "bluegreen_colors": ["blue", "red"],
    "bluegreen_load_balancer_arn": "not-an-arn",
    "bluegreen_listener_port": 0,
    "bluegreen_test_listener_port": 70000,
    "bluegreen_target_groups": [1],
    "bluegreen_services": [1],
    "bluegreen_alarms": [1],
    "bluegreen_repository_name": "Bad Repo",
    "bluegreen_container_name": "bad name!",
    "bluegreen_lock_parameter": "no-slash",
    "bluegreen_lock_stale_after": 10,
    "bluegreen_lock_renew_seconds": 2000,
    "bluegreen_lock_token": "not a token!",
    "bluegreen_promote": NOT_A_BOOL,
    "bluegreen_name_prefix": "Bad_Prefix",
    "bluegreen_version": "bad version!",
    "bluegreen_color": "red",
    "bluegreen_canary_steps": "50,10,100",
    "bluegreen_bake_seconds": "abc",
    "bluegreen_bake_poll_seconds": 0,
    "bluegreen_retire_old": NOT_A_BOOL,
    "bluegreen_deploy_timeout": 0,
    "bluegreen_deploy_poll_seconds": 0,
    "bluegreen_smoke_test": NOT_A_BOOL,
    "bluegreen_smoke_test_base_url": "ftp://example.com",
    "bluegreen_smoke_test_path": "no-slash",
    "bluegreen_smoke_test_validate_certs": NOT_A_BOOL,
    "bluegreen_smoke_test_retries": 0,
    "bluegreen_load_balancer_dns": "bad host!",
    # cicd
    "cicd_enabled": NOT_A_BOOL,
    "cicd_state": "gone",
    "cicd_name_prefix": "Bad_Prefix",
    "cicd_tags": {"Project": ""},
    "cicd_path": "no-slash",
    "cicd_account_id": "12345",
    "cicd_region": "mars-north-1x",
    "cicd_partition": "aws-mars",
    "cicd_github_repository": "not a repository",
    "cicd_github_environment": "prod*",
    "cicd_oidc_url": "http://token.actions.githubusercontent.com",
    "cicd_oidc_audience": "*",
    "cicd_oidc_thumbprints": ["abc"],
    "cicd_manage_oidc_provider": NOT_A_BOOL,
    "cicd_remove_oidc_provider": NOT_A_BOOL,
    "cicd_role_name": "bad role name!",
    "cicd_max_session_duration": 60,
    "cicd_permissions_boundary": "not-an-arn",
    "cicd_repository_name": "Bad Repo",
    "cicd_cluster_name": "bad cluster!",
    "cicd_service_names": [],
    "cicd_task_families": ["bad family!"],
    "cicd_load_balancer_name": "Bad LB!",
    "cicd_lock_parameter": "no-slash",
    "cicd_pass_role_names": [],
    "cicd_db_instance_identifier": "Bad DB!",
}

# The operator's short names on the command line (-e retire_old=...), which the playbooks wire into the
# bluegreen and platform variables: (extra vars, the name the message must carry).
SHORT_NAMES = [
    ({"color": "green", "retire_old": NOT_A_BOOL}, "retire_old"),
    ({"color": "green", "bake_seconds": "abc"}, "bake_seconds"),
    ({"color": "green", "bake_seconds": 100000}, "bake_seconds"),
    ({"color": "green", "bake_seconds": 3601}, "bake_seconds"),
    ({"color": "green", "canary": "50,10"}, "canary"),
    ({"color": "red"}, "color"),
    ({"color": "green", "break_lock": NOT_A_BOOL}, "break_lock"),
]
# Those that only deploy takes (-e promote=maybe must be refused, not read as false).
DEPLOY_SHORT_NAMES = [
    ({"version": "v2", "promote": NOT_A_BOOL}, "promote"),
    ({"version": "v2", "promote": "yes please"}, "promote"),
]


def spec_variables(roles: Path = ROLES) -> dict[str, str]:
    """Every variable of every entry point of every role: {variable: role}."""
    found = {}
    for spec_file in sorted(roles.glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        for entry_point in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            for name in entry_point.get("options") or {}:
                found[name] = role
    return found


def playbook_of(variable: str) -> tuple[str, dict]:
    """The playbook whose preflight checks the variable, and the other inputs that playbook needs."""
    if variable == "bluegreen_version":
        return "deploy", {}
    if variable.startswith("bluegreen_") and variable != "bluegreen_color":
        return "swap", {"color": "green"}
    if variable == "bluegreen_color":
        return "swap", {}
    return "provision", {}


def cases() -> list[tuple[str, dict, str]]:
    """Every case: (playbook, extra vars, the name the refusal must carry)."""
    found = []
    for variable in sorted(set(spec_variables()) - set(NOT_SET_BY_USERS)):
        playbook, needed = playbook_of(variable)
        found.append((playbook, {**needed, variable: WRONG[variable]}, variable))
    found += [("swap", extra, named) for extra, named in SHORT_NAMES]
    return found + [("deploy", extra, named) for extra, named in DEPLOY_SHORT_NAMES]


def refusal_problems(api, playbook: str, extra: dict, named: str) -> list[str]:
    """Run one case against ``api``: what is wrong with its refusal (nothing: it was refused, naming
    ``named``, before any task that calls AWS started)."""
    return case_problems(playbook, extra, named, run_case(api, playbook, extra))


def run_case(api, playbook: str, extra: dict) -> Run:
    """``ansible-playbook playbooks/<playbook>.yml -e <extra as JSON>`` against ``api``."""
    # Nothing runs on a host before the refusal: the plain linear strategy starts faster than Mitogen's.
    return run_playbook(api, playbook, "-e", json.dumps(extra), env={"ANSIBLE_STRATEGY": "ansible.builtin.linear"})


def aws_tasks_started(output: str) -> list[str]:
    """The tasks of FIRST_AWS_TASKS that started in a run's output."""
    return [task for task in FIRST_AWS_TASKS if f"TASK [ecs_production.platform.platform : {task}" in output]


def case_problems(playbook: str, extra: dict, named: str, run: Run) -> list[str]:
    """What is wrong with one case's refusal in ``run``. A variable of the argument specs must be named as
    what is wrong (``refused_variables``); an operator's short name (``-e color=``) anywhere in the output."""
    problems = []
    if run.returncode == 0:
        problems.append("the run passed")
    if named in spec_variables():
        if named not in refused_variables(run.output):
            problems.append(f"the refusal does not name {named} as a wrong input")
    elif named not in run.output:
        problems.append(f"the output does not name {named}")
    started = aws_tasks_started(run.output)
    if started:
        problems.append(f"a task that calls AWS started: {started}")
    return [f"{playbook} -e '{json.dumps(extra)}': {problem}\n{run.tail(1500)}" for problem in problems]


# ---- reading a refusal -----------------------------------------------------------------------------

# A failed result of the default callback in YAML: "fatal: [localhost]: FAILED! => " (a task) or
# "failed: [localhost] (item=...) => " (one item of a loop), the result's keys indented below.
FAILED_RESULT = re.compile(r"^(?:fatal: \[[^\]]+\]: FAILED!|failed: \[[^\]]+\] \(item=.*\)) => ?(.*)$", re.M)
ARGUMENT_SPEC_FAILED = "Validation of arguments failed:"
# One line per wrong input of the argument spec's validation (ansible.module_utils.common.parameters); an
# option inside another ("... found in 'outer -> inner'") is the outer variable's wrong value.
ARGUMENT_SPEC_LINE = re.compile(
    r"^(?:argument '(?P<typed>\w+)' is of type "
    r"|value of (?P<choice>\w+) must be one (?:or more )?of: "
    r"|Elements value for option '(?P<element>\w+)'"
    r")(?:.*? found in '(?P<outer>\w+))?"
)
# The sentences of the roles' asserts that make their variable the subject of a refusal. Each must start
# the message or a sentence (after ". "); a variable named anywhere else (in "set V to true", in an allowed
# text, in "inside network_vpc_cidr ...") is not credited.
REFUSAL_SENTENCE = re.compile(
    r"(?:^|(?<=\. ))(?:"
    # the checks lists of tasks/validate.yml: "V is <its value as JSON>: <what is allowed>."
    r"(?P<check>[a-z][a-z0-9_]*) is (?=\"|\[|\{|-?[0-9]|true\b|false\b|null\b)"
    # network: 'network_vpc_cidr "10.0.0.0/33" is not an IPv4 network ...'
    r"|(?P<quoted>[a-z][a-z0-9_]*) \"[^\"]*\" is not "
    # network: '<list> entry "nonsense" is not an IPv4 network inside network_vpc_cidr ...'
    r"|(?P<entry>[a-z][a-z0-9_]*) entry \"[^\"]*\" is not "
    # network: "network_public_subnet_cidrs: public subnets overlap: ..."
    r"|(?P<overlap>[a-z][a-z0-9_]*): [a-z]+ subnets overlap: "
    # network: "network_app_subnet_cidrs overlap each other or the public or private subnets: ..."
    r"|(?P<app_overlap>[a-z][a-z0-9_]*) overlap each other "
    # bluegreen, the operator's inputs: "-e color=red (bluegreen_color): ...", "-e bake_seconds=abc
    # (bluegreen_bake_seconds) must be ..."
    r"|-e [a-z_]+=[^()]*\((?P<operator>[a-z][a-z0-9_]*)\)[: ]"
    r")"
)


def failure_messages(output: str) -> list[str]:
    """The ``msg`` of every failed result (task or loop item) in a run's output."""
    messages = []
    lines = output.splitlines()
    for number, line in enumerate(lines):
        found = FAILED_RESULT.match(line)
        if not found:
            continue
        if found.group(1).strip():  # the result on the same line (JSON)
            block = found.group(1)
        else:
            body = []
            for following in lines[number + 1 :]:
                if following.strip() and not following.startswith("    "):
                    break
                body.append(following)
            block = textwrap.dedent("\n".join(body))
        try:
            result = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(result, dict) and isinstance(result.get("msg"), str):
            messages.append(result["msg"])
    return messages


def refused_in_message(message: str) -> set[str]:
    """The variables one failure message refuses: those it makes the subject of a refusal."""
    if message.startswith(ARGUMENT_SPEC_FAILED):
        found = set()
        for line in message.splitlines()[1:]:
            match = ARGUMENT_SPEC_LINE.match(line.strip())
            if match:
                found.add(match["outer"] or match["typed"] or match["choice"] or match["element"])
        return found
    flat = " ".join(message.split())
    return {next(name for name in match.groups() if name) for match in REFUSAL_SENTENCE.finditer(flat)}


def refusals(output: str) -> dict[str, bool]:
    """{variable a failed run's output refuses: whether only by the argument spec's validation}, read from
    its failed results' messages only (not from the argument spec it dumps, nor from a variable mentioned
    in passing)."""
    found: dict[str, bool] = {}
    for message in failure_messages(output):
        by_spec = message.startswith(ARGUMENT_SPEC_FAILED)
        for name in refused_in_message(message):
            found[name] = found.get(name, True) and by_spec
    return found


def refused_variables(output: str) -> set[str]:
    """The variables a failed run's output refuses (``refusals``)."""
    return set(refusals(output))


# ---- batching --------------------------------------------------------------------------------------

VALIDATING_TASKS = [*sorted(ROLES.glob("*/tasks/validate.yml")), ROLES / "platform" / "tasks" / "main.yml"]
VARIABLE_WORD = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")


def check_dependencies(files: Iterable[Path] = VALIDATING_TASKS, variables: Iterable[str] | None = None) -> dict:
    """{variable: the other variables one of its checks reads}, symmetric. A check of a ``*_checks``
    list reads what its ``ok`` names; any other assert reads everything its ``that``, ``vars``, ``loop`` and
    ``when`` name, for each variable it names. A batch never holds two variables that depend on each other:
    one's wrong value could then make the other's check fail, crediting a variable whose own wrong value
    would pass."""
    known = set(spec_variables() if variables is None else variables)
    depends: dict[str, set[str]] = {}

    def tie(names: set[str]) -> None:
        for name in names:
            depends.setdefault(name, set()).update(names - {name})

    for path in files:
        for task in yaml.safe_load(Path(path).read_text()) or []:
            if "ansible.builtin.assert" not in task:
                continue
            checks = [value for key, value in (task.get("vars") or {}).items() if key.endswith("_checks")]
            if checks:
                for check in checks[0]:
                    tie({check["name"], *(set(VARIABLE_WORD.findall(str(check["ok"]))) & known)})
                continue
            read = [task["ansible.builtin.assert"].get("that"), task.get("vars"), task.get("loop"), task.get("when")]
            tie(set(VARIABLE_WORD.findall(json.dumps(read, default=str))) & known)
    return depends


def plan_batches(variables: Iterable[str], depends: dict[str, set[str]]) -> list[list[str]]:
    """The variables in as few batches as a greedy colouring gives, no two dependent ones together."""
    batches: list[list[str]] = []
    for variable in variables:
        for batch in batches:
            if not depends.get(variable, set()) & set(batch):
                batch.append(variable)
                break
        else:
            batches.append([variable])
    return batches


def credited(batch: Iterable[str], run: Run, depends: dict[str, set[str]]) -> set[str]:
    """The variables of ``batch`` that ``run`` refused: none unless it failed before any task that calls
    AWS; then those its failure messages make the subject of a refusal. A variable refused by a check is
    credited only if no variable that check reads was in the batch (the argument spec's type and choice
    errors read the variable alone)."""
    if run.returncode == 0 or aws_tasks_started(run.output):
        return set()
    batch = set(batch)
    return {
        name
        for name, by_spec in refusals(run.output).items()
        if name in batch and (by_spec or not depends.get(name, set()) & batch)
    }


@dataclass
class Group:
    """Cases run by one playbook with the same needed inputs, of one role: batched together."""

    playbook: str
    needed: dict
    role: str
    variables: list[str] = field(default_factory=list)


def groups() -> list[Group]:
    """The cases of the argument specs' variables, grouped by (playbook, needed inputs, role)."""
    found: dict[tuple, Group] = {}
    roles = spec_variables()
    for variable in sorted(set(roles) - set(NOT_SET_BY_USERS)):
        playbook, needed = playbook_of(variable)
        key = (playbook, json.dumps(needed, sort_keys=True), roles[variable])
        found.setdefault(key, Group(playbook, needed, roles[variable])).variables.append(variable)
    # The groups with the most stages (each a round at least) first, then the biggest.
    return sorted(found.values(), key=lambda group: (-stages(group.role), -len(group.variables)))


def stages(role: str) -> int:
    """How many checks a run may stop at for the role's variables: its argument spec and its asserts."""
    path = ROLES / role / "tasks" / ("main.yml" if role == "platform" else "validate.yml")
    return 1 + sum("ansible.builtin.assert" in task for task in yaml.safe_load(path.read_text()) or [])


@dataclass
class Refusals:
    """What ``refuse_all`` found: problems as ``refusal_problems`` words them, and the runs it made."""

    cases: int = 0
    runs: int = 0
    problems: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # one line per batch: what it carried, what it credited
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def refuse_group(group: Group, run: Callable[[str, dict], Run], depends: dict, report: Refusals) -> None:
    """Batch a group's wrong values round after round; what a round does not credit goes into the next
    (re-batched); a round that credits nothing leaves the rest to one run each, checked as one case (as is
    a last variable left alone)."""

    def counted(extra: dict) -> Run:
        with report.lock:
            report.runs += 1
        return run(group.playbook, extra)

    remaining = list(group.variables)
    # The first round carries every wrong value of the group at once: the argument spec's validation
    # names all its own errors, whatever else is wrong. The next rounds keep dependent variables apart.
    batches = [remaining]
    while len(remaining) > 1:
        got = set()
        for batch in batches:
            refused = credited(batch, counted({**group.needed, **{name: WRONG[name] for name in batch}}), depends)
            with report.lock:
                report.log.append(f"{group.playbook} {group.role}: {len(batch)} wrong, credited {sorted(refused)}")
            got |= refused
        if not got:
            break
        remaining = [name for name in remaining if name not in got]
        batches = plan_batches(remaining, depends)
    for name in remaining:
        with report.lock:
            report.log.append(f"{group.playbook} {group.role}: {name} alone")
        extra = {**group.needed, name: WRONG[name]}
        problems = case_problems(group.playbook, extra, name, counted(extra))
        with report.lock:
            report.problems += problems


def refuse_all(api, workers: int = 2, run: Callable[[str, dict], Run] | None = None) -> Refusals:
    """Every case of ``cases()``, batched: the argument specs' variables by group (``refuse_group``), the
    operator's short names one per run. ``run(playbook, extra)`` runs a playbook (default: against ``api``)."""
    run = run or (lambda playbook, extra: run_case(api, playbook, extra))
    depends = check_dependencies()
    report = Refusals(cases=len(cases()))
    singles = [("swap", extra, named) for extra, named in SHORT_NAMES]
    singles += [("deploy", extra, named) for extra, named in DEPLOY_SHORT_NAMES]

    def single(case: tuple[str, dict, str]) -> None:
        playbook, extra, named = case
        with report.lock:
            report.runs += 1
        problems = case_problems(playbook, extra, named, run(playbook, extra))
        with report.lock:
            report.problems += problems

    jobs = [lambda group=group: refuse_group(group, run, depends, report) for group in groups()]
    jobs += [lambda case=case: single(case) for case in singles]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(job) for job in jobs]:
            done.result()
    return report
