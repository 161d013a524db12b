"""Every input of every role is checked before any AWS call.

The test reads every variable of every entry point of every role's ``meta/argument_specs.yml`` and
runs the playbook that uses it with one wrong value of that variable (``WRONG``: a wrong type, a value
outside the choices, out of range, or not matching the pattern AWS accepts), one variable per run so
that the message check is honest. Each run must fail, name the variable, and make no AWS request: the
local AWS API's request count does not move, and no task that calls AWS has started.

A variable added to an argument spec without a wrong value here fails ``test_every_variable_has_a_wrong_value``.
Only the variables listed in ``NOT_SET_BY_USERS`` (with the reason) are left out.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from localcloud.harness import run_playbook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROLES = Path(__file__).resolve().parents[2] / "roles"

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
    "network_delete_timeout": -5,
    "network_app_subnets_private": NOT_A_BOOL,
    "network_app_subnet_cidrs": ["10.0.21.0/24", "nonsense"],
    "network_nat_gateways": "two",
    "network_vpc_endpoints": NOT_A_BOOL,
    "network_vpc_endpoint_services": ["s3"],
    "network_region": "mars-north-1x",
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
    "alb_alarm_5xx_threshold": 0,
    "alb_alarm_period": 45,
    "alb_alarm_evaluation_periods": 0,
    "alb_alarm_actions": ["not-an-arn"],
    "alb_waf_enabled": NOT_A_BOOL,
    "alb_waf_rate_limit": 5,
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
    "rds_backup_retention_days": 40,
    "rds_deletion_protection": NOT_A_BOOL,
    "rds_skip_final_snapshot": NOT_A_BOOL,
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
    "ecs_container_health_check": {"command": ["CMD"]},
    "ecs_health_check_grace_period": -1,
    "ecs_stop_timeout": 200,
    "ecs_deployment_minimum_healthy_percent": 150,
    "ecs_deployment_maximum_percent": 50,
    "ecs_log_retention_days": 8,
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
}

# The operator's short names on the command line (-e retire_old=...), which the playbooks wire into the
# bluegreen and platform variables: (extra vars, the name the message must carry).
SHORT_NAMES = [
    ({"color": "green", "retire_old": NOT_A_BOOL}, "retire_old"),
    ({"color": "green", "bake_seconds": "abc"}, "bake_seconds"),
    ({"color": "green", "bake_seconds": 100000}, "bake_seconds"),
    ({"color": "green", "canary": "10,50,100", "bake_seconds": 1500}, "bake_seconds"),
    ({"color": "green", "canary": "50,10"}, "canary"),
    ({"color": "red"}, "color"),
    ({"color": "green", "break_lock": NOT_A_BOOL}, "break_lock"),
]


def spec_variables() -> dict[str, str]:
    """Every variable of every entry point of every role: {variable: role}."""
    found = {}
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
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


def test_every_variable_has_a_wrong_value():
    variables = spec_variables()
    missing = sorted(set(variables) - set(WRONG) - set(NOT_SET_BY_USERS))
    assert not missing, f"variables of the argument specs without a wrong value in WRONG: {missing}"
    unknown = sorted((set(WRONG) | set(NOT_SET_BY_USERS)) - set(variables))
    assert not unknown, f"WRONG or NOT_SET_BY_USERS name variables no argument spec has: {unknown}"
    assert not set(WRONG) & set(NOT_SET_BY_USERS)


def refusal_problems(api, playbook: str, extra: dict, named: str) -> list[str]:
    # Nothing runs on a host before the refusal: the plain linear strategy starts faster than Mitogen's.
    run = run_playbook(api, playbook, "-e", json.dumps(extra), env={"ANSIBLE_STRATEGY": "ansible.builtin.linear"})
    problems = []
    if run.returncode == 0:
        problems.append("the run passed")
    if named not in run.output:
        problems.append(f"the output does not name {named}")
    started = [task for task in FIRST_AWS_TASKS if f"TASK [ecs_production.platform.platform : {task}" in run.output]
    if started:
        problems.append(f"a task that calls AWS started: {started}")
    return [f"{playbook} -e '{json.dumps(extra)}': {problem}\n{run.tail(1500)}" for problem in problems]


def test_a_wrong_value_of_every_variable_is_refused_before_any_api_call(aws_api):
    """~170 runs, two at a time (the machine has two cores); each must refuse its one wrong value."""
    cases = []
    for variable in sorted(set(spec_variables()) - set(NOT_SET_BY_USERS)):
        playbook, needed = playbook_of(variable)
        cases.append((playbook, {**needed, variable: WRONG[variable]}, variable))
    cases += [("swap", extra, named) for extra, named in SHORT_NAMES]

    started = time.monotonic()
    before = aws_api.request_count()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: refusal_problems(aws_api, *case), cases))
    requests = aws_api.request_count() - before
    problems = [problem for result in results for problem in result]
    print(f"{len(cases)} wrong inputs refused in {time.monotonic() - started:.0f} s, {requests} AWS requests")
    assert not problems, f"{len(problems)} problem(s):\n\n" + "\n\n".join(problems)
    assert requests == 0, f"{requests} AWS request(s) were made before a wrong input was refused"
