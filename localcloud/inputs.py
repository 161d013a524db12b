"""The input matrix: one wrong value of every variable of every role's argument specs, and how to try it.

Shared by ``tests/e2e/test_inputs.py`` (every case, each must be refused before any AWS call, naming
the variable) and ``bench/reliability.py`` (a sample, counted). ``WRONG`` holds one wrong value per
variable (a wrong type, a value outside the choices, out of range, or not matching the pattern AWS
accepts); ``NOT_SET_BY_USERS`` the variables users do not set, each with the reason; ``SHORT_NAMES``
the operator's ``-e`` names the playbooks wire into role variables.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from localcloud.harness import REPO, run_playbook

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
    "rds_backup_retention_days": 40,
    "rds_allow_disruptive": NOT_A_BOOL,
    "rds_deletion_protection": NOT_A_BOOL,
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
    "ecs_container_health_check": {"command": ["CMD"]},
    "ecs_health_check_grace_period": -1,
    "ecs_stop_timeout": 200,
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
