"""The cicd role's trust and deploy policies as Ansible renders them, checked as documents.

The end-to-end test (tests/e2e/test_deploy_identity.py) proves the deploy role on the local cloud with
moto's IAM enforcement, which checks actions and resources but not the conditions of an identity policy,
nor iam:PassRole when a task definition names a role. Here the documents themselves: an evaluator of
IAM's rules for Allow statements (actions and resources with * and ? wildcards, StringEquals conditions)
decides the matrix of calls the playbooks make (recorded on the local cloud: docs/cicd.md) and of calls
the role must not be able to make, and the trust policy admits exactly one subject.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROLE = Path(__file__).resolve().parents[3] / "roles" / "cicd"
ACCOUNT = "111122223333"
REGION = "eu-west-1"
PREFIX = "shop-prod"
INPUTS = {
    "cicd_name_prefix": PREFIX,
    "cicd_tags": {"Project": "shop", "Environment": "prod", "ManagedBy": "ecs_production.platform"},
    "cicd_path": "/shop/prod/",
    "cicd_account_id": ACCOUNT,
    "cicd_region": REGION,
    "cicd_github_repository": "example-org/shop",
    "cicd_github_environment": "prod",
    "cicd_repository_name": PREFIX,
    "cicd_cluster_name": PREFIX,
    "cicd_service_names": [f"{PREFIX}-blue", f"{PREFIX}-green"],
    "cicd_task_families": [f"{PREFIX}-blue", f"{PREFIX}-green"],
    "cicd_load_balancer_name": f"{PREFIX}-alb",
    "cicd_lock_parameter": "/shop/prod/lock",
    "cicd_pass_role_names": [f"{PREFIX}-execution", f"{PREFIX}-task"],
    "cicd_db_instance_identifier": f"{PREFIX}-db",
}
PLAYBOOK = """\
- name: Render the cicd role's policies
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{defaults}", "{vars}"]
  tasks:
    - name: Write them
      ansible.builtin.copy:
        content: "{{{{ {{'trust': cicd__trust_policy, 'policy': cicd__deploy_policy}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"
"""

ARN = f"{REGION}:{ACCOUNT}"
REPO_ARN = f"arn:aws:ecr:{ARN}:repository/{PREFIX}"
LISTENER = f"arn:aws:elasticloadbalancing:{ARN}:listener/app/{PREFIX}-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
LOCK = f"arn:aws:ssm:{ARN}:parameter/shop/prod/lock"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shop/prod/{PREFIX}-task"
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shop/prod/{PREFIX}-execution"
ECS_TASKS = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}

# Every call deploy.yml, swap.yml, rollback.yml and status.yml make (recorded), on the resource it touches.
NEEDED = [
    ("iam:ListAccountAliases", "*", {}),
    ("ecr:GetAuthorizationToken", "*", {}),
    ("ecr:DescribeRepositories", REPO_ARN, {}),
    ("ecr:DescribeImages", REPO_ARN, {}),
    *[(f"ecr:{a}", REPO_ARN, {}) for a in ("BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart")],
    ("ecr:CompleteLayerUpload", REPO_ARN, {}),
    ("ecr:PutImage", REPO_ARN, {}),
    *[
        (f"iam:{a}", r, {})
        for a in ("GetRole", "ListRolePolicies", "ListAttachedRolePolicies")
        for r in (TASK_ROLE, EXECUTION_ROLE)
    ],
    ("iam:ListInstanceProfilesForRole", TASK_ROLE, {}),
    ("rds:DescribeDBInstances", f"arn:aws:rds:{ARN}:db:{PREFIX}-db", {}),
    *[
        (f"elasticloadbalancing:Describe{a}", "*", {})
        for a in ("LoadBalancers", "Listeners", "Tags", "TargetGroups", "TargetHealth")
    ],
    *[(f"ssm:{a}", LOCK, {}) for a in ("PutParameter", "GetParameter", "DeleteParameter")],
    ("ssm:PutParameter", LOCK + ".claim-5283fc489c5709666a4c5745fc491ef9", {}),
    ("ecs:DescribeServices", f"arn:aws:ecs:{ARN}:service/{PREFIX}/{PREFIX}-blue", {}),
    ("ecs:ListTaskDefinitions", "*", {}),
    ("ecs:DescribeTaskDefinition", "*", {}),
    ("ecs:RegisterTaskDefinition", "*", {}),
    ("iam:PassRole", TASK_ROLE, ECS_TASKS),
    ("iam:PassRole", EXECUTION_ROLE, ECS_TASKS),
    ("ecs:ListTagsForResource", f"arn:aws:ecs:{ARN}:task-definition/{PREFIX}-green:2", {}),
    ("ecs:TagResource", f"arn:aws:ecs:{ARN}:task-definition/{PREFIX}-green:2", {}),
    ("ecs:UpdateService", f"arn:aws:ecs:{ARN}:service/{PREFIX}/{PREFIX}-green", {}),
    ("elasticloadbalancing:ModifyListener", LISTENER, {}),
    ("elasticloadbalancing:AddTags", LISTENER, {}),
    ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{ARN}:alarm:{PREFIX}-green-5xx", {}),
]

# What the deploy role must never do.
FORBIDDEN = [
    ("ssm:GetParameter", f"arn:aws:ssm:{ARN}:parameter/shop/prod/db/password", {}),
    ("ssm:GetParameters", f"arn:aws:ssm:{ARN}:parameter/shop/prod/db/password", {}),
    ("ssm:GetParametersByPath", f"arn:aws:ssm:{ARN}:parameter/shop/prod", {}),
    ("ssm:PutParameter", f"arn:aws:ssm:{ARN}:parameter/shop/prod/db/password", {}),
    ("kms:Decrypt", f"arn:aws:kms:{ARN}:key/1234", {}),
    ("iam:PassRole", TASK_ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}),
    ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", ECS_TASKS),
    ("iam:CreateRole", "*", {}),
    ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/shop/prod/{PREFIX}-deploy", {}),
    ("iam:AttachRolePolicy", TASK_ROLE, {}),
    ("iam:UpdateAssumeRolePolicy", TASK_ROLE, {}),
    ("ec2:CreateVpc", "*", {}),
    ("ec2:AuthorizeSecurityGroupIngress", "*", {}),
    ("rds:DeleteDBInstance", f"arn:aws:rds:{ARN}:db:{PREFIX}-db", {}),
    ("rds:ModifyDBInstance", f"arn:aws:rds:{ARN}:db:{PREFIX}-db", {}),
    ("ecr:PutImage", f"arn:aws:ecr:{ARN}:repository/other", {}),
    ("ecr:DeleteRepository", REPO_ARN, {}),
    ("ecr:SetRepositoryPolicy", REPO_ARN, {}),
    ("ecr:PutLifecyclePolicy", REPO_ARN, {}),
    ("ecs:UpdateService", f"arn:aws:ecs:{ARN}:service/{PREFIX}/other", {}),
    ("ecs:UpdateService", f"arn:aws:ecs:{ARN}:service/other-cluster/{PREFIX}-green", {}),
    ("ecs:DeleteService", f"arn:aws:ecs:{ARN}:service/{PREFIX}/{PREFIX}-green", {}),
    ("ecs:DeleteCluster", f"arn:aws:ecs:{ARN}:cluster/{PREFIX}", {}),
    ("ecs:TagResource", f"arn:aws:ecs:{ARN}:task-definition/other:1", {}),
    ("elasticloadbalancing:ModifyListener", LISTENER.replace(f"{PREFIX}-alb", "other-alb"), {}),
    ("elasticloadbalancing:DeleteListener", LISTENER, {}),
    (
        "elasticloadbalancing:DeleteLoadBalancer",
        f"arn:aws:elasticloadbalancing:{ARN}:loadbalancer/app/{PREFIX}-alb/1",
        {},
    ),
    ("elasticloadbalancing:ModifyTargetGroup", f"arn:aws:elasticloadbalancing:{ARN}:targetgroup/{PREFIX}-blue/1", {}),
    ("cloudwatch:PutMetricAlarm", f"arn:aws:cloudwatch:{ARN}:alarm:{PREFIX}-green-5xx", {}),
    ("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:{ARN}:alarm:{PREFIX}-green-5xx", {}),
    ("logs:DeleteLogGroup", "*", {}),
    ("sts:AssumeRole", "*", {}),
]


def render(tmp_path: Path, **overrides) -> dict:
    out = tmp_path / "rendered.json"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        PLAYBOOK.format(defaults=ROLE / "defaults" / "main.yml", vars=ROLE / "vars" / "main.yml", out=out)
    )
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({**INPUTS, **overrides}))
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            f"@{inputs}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(out.read_text())


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def allowed(policy: dict, action: str, resource: str, context: dict) -> bool:
    """IAM's evaluation of one identity policy of Allow statements: an action is allowed when one statement
    matches it (case-insensitive), the resource and every StringEquals condition."""
    for statement in listed(policy["Statement"]):
        assert statement["Effect"] == "Allow"  # this policy grants; denials come from granting nothing
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in listed(statement["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r.replace("[", "[[]")) for r in listed(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        assert set(conditions) <= {"StringEquals"}, conditions
        if all(context.get(key) in listed(value) for key, value in conditions.get("StringEquals", {}).items()):
            return True
    return False


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    return render(tmp_path_factory.mktemp("cicd"))


@pytest.mark.parametrize(
    ("action", "resource", "context"), NEEDED, ids=[f"{case[0]} {case[1].rsplit(':', 1)[-1]}" for case in NEEDED]
)
def test_what_the_playbooks_call_is_allowed(documents, action, resource, context):
    assert allowed(documents["policy"], action, resource, context)


@pytest.mark.parametrize(
    ("action", "resource", "context"), FORBIDDEN, ids=[f"{case[0]} {case[1].rsplit(':', 1)[-1]}" for case in FORBIDDEN]
)
def test_nothing_else_is_allowed(documents, action, resource, context):
    assert not allowed(documents["policy"], action, resource, context)


def test_no_action_wildcards_and_resource_star_only_where_aws_takes_no_resource(documents):
    star_actions = set()
    for statement in documents["policy"]["Statement"]:
        for action in listed(statement["Action"]):
            assert "*" not in action and "?" not in action, action
        if "*" in listed(statement["Resource"]):
            assert listed(statement["Resource"]) == ["*"]
            star_actions |= set(listed(statement["Action"]))
    writes = {a for a in star_actions if not a.split(":")[1].startswith(("Describe", "List", "Get"))}
    # The one write on "*": AWS takes no resource for RegisterTaskDefinition; what runs changes only with
    # UpdateService (scoped to the environment's services) and PassRole (scoped to its two task roles).
    assert writes == {"ecs:RegisterTaskDefinition"}


def test_the_trust_policy_admits_one_repository_and_environment_only(documents):
    statements = listed(documents["trust"]["Statement"])
    assert len(statements) == 1
    [statement] = statements
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:example-org/shop:environment:prod",
        }
    }


SCALABLE_TARGET = f"arn:aws:application-autoscaling:{ARN}:scalable-target/0ec9a8f2c8c4e1a1b2c3d4e5f6a7b8c9"
ECS_DESIRED_COUNT = {
    "application-autoscaling:service-namespace": "ecs",
    "application-autoscaling:scalable-dimension": "ecs:service:DesiredCount",
}


def test_with_autoscaling_deploy_may_set_ecs_scalable_targets_and_nothing_more(tmp_path, documents):
    scaling = render(tmp_path, cicd_autoscaling=True)["policy"]
    assert allowed(scaling, "application-autoscaling:DescribeScalableTargets", "*", {})
    assert allowed(scaling, "application-autoscaling:RegisterScalableTarget", SCALABLE_TARGET, ECS_DESIRED_COUNT)
    other = dict(ECS_DESIRED_COUNT, **{"application-autoscaling:service-namespace": "dynamodb"})
    assert not allowed(scaling, "application-autoscaling:RegisterScalableTarget", SCALABLE_TARGET, other)
    elsewhere = SCALABLE_TARGET.replace(REGION, "us-east-1")
    assert not allowed(scaling, "application-autoscaling:RegisterScalableTarget", elsewhere, ECS_DESIRED_COUNT)
    for action in ("PutScalingPolicy", "DeleteScalingPolicy", "DeregisterScalableTarget"):
        assert not allowed(scaling, f"application-autoscaling:{action}", SCALABLE_TARGET, ECS_DESIRED_COUNT)
    # Without autoscaling, none of it.
    for action in ("DescribeScalableTargets", "RegisterScalableTarget"):
        assert not allowed(documents["policy"], f"application-autoscaling:{action}", "*", ECS_DESIRED_COUNT)
    # Everything else is the same document.
    assert [s for s in scaling["Statement"] if s["Sid"] in {t["Sid"] for t in documents["policy"]["Statement"]}] == (
        documents["policy"]["Statement"]
    )


def test_other_names_follow_the_inputs(tmp_path):
    documents = render(
        tmp_path, cicd_github_environment="staging", cicd_partition="aws-us-gov", cicd_lock_parameter="/x/y/lock"
    )
    condition = documents["trust"]["Statement"][0]["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:sub"] == "repo:example-org/shop:environment:staging"
    assert documents["trust"]["Statement"][0]["Principal"]["Federated"].startswith("arn:aws-us-gov:iam::")
    lock = next(s for s in documents["policy"]["Statement"] if s["Sid"] == "TheEnvironmentLockOnly")
    assert lock["Resource"] == [
        f"arn:aws-us-gov:ssm:{ARN}:parameter/x/y/lock",
        f"arn:aws-us-gov:ssm:{ARN}:parameter/x/y/lock.claim-*",
    ]
