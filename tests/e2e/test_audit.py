"""The security audit end to end against the local AWS API: a fresh provision passes every rule; each
violation, injected through the API, makes ``playbooks/audit.yml`` fail naming it, and is undone after.

Provisioned once per module (a reset of the local account, then the provision playbook). Each test undoes
its injection in a ``finally``, so the tests are independent and each passes alone (``pytest -k``).
"""

from __future__ import annotations

import re

import pytest

from localcloud.audit_cases import CASES, RULES, violation_problems
from localcloud.harness import PREFIX, run_playbook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def provisioned(aws_api):
    aws_api.reset()
    run = run_playbook(aws_api, "provision")
    assert run.returncode == 0, f"provisioning for the test:\n{run.tail()}"
    return aws_api


def test_a_fresh_provision_passes_every_rule(provisioned):
    run = run_playbook(provisioned, "audit")
    assert run.returncode == 0, run.tail()
    for rule in RULES:
        assert re.search(rf"PASS\s+{rule}\b", run.stdout), f"{rule} not listed as passed:\n{run.tail()}"
    assert "FAIL " not in run.stdout
    assert f"{len(RULES)} of {len(RULES)} rules passed" in run.stdout
    assert run.changed == 0

    checked = run_playbook(provisioned, "audit", "--check")
    assert checked.returncode == 0, checked.tail()
    assert f"{len(RULES)} of {len(RULES)} rules passed" in checked.stdout


@pytest.mark.parametrize(
    ("rule", "inject", "args", "named"), CASES, ids=[f"{case[0]}-{case[1].__name__}" for case in CASES]
)
def test_each_violation_fails_the_audit_naming_it(provisioned, rule, inject, args, named):
    problems = violation_problems(provisioned, rule, inject, args, named)
    assert not problems, "\n\n".join(problems)


def test_deletion_protection_asked_for_and_on_passes(provisioned):
    api = provisioned
    elbv2, rds = api.client("elbv2"), api.client("rds")
    arn = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]["LoadBalancerArn"]

    def protect(on: bool) -> None:
        value = "true" if on else "false"
        elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": value}]
        )
        rds.modify_db_instance(DBInstanceIdentifier=f"{PREFIX}-db", DeletionProtection=on, ApplyImmediately=True)

    protect(True)
    try:
        run = run_playbook(api, "audit", "-e", "alb_deletion_protection=true", "-e", "rds_deletion_protection=true")
    finally:
        protect(False)
    assert run.returncode == 0, run.tail()
    assert re.search(r"PASS\s+deletion_protection\s+2 checked", run.stdout), run.tail()
