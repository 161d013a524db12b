"""The foundation, end to end against the local AWS API: provision, re-run, check mode, drift that
belongs to deploy and swap, teardown, and bad input (an interrupted provision, the lock it leaves and
the teardown after it: tests/e2e/test_crash_resume.py).

The tests share one account. Each names the state it starts from (the ``empty`` or ``provisioned``
fixture), which the fixture checks through the API and, where the account is not in it, reaches (a
reset of the local account, then the provision playbook). In file order each test leaves the state the
next one needs, as an operator's runs would, so nothing runs twice; alone (``pytest -k``), a test gets
its state first.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from localcloud.harness import PREFIX, desired_counts, listener_weights, run_playbook, set_listener_weights
from localcloud.recorder import ApiRecorder, ansible_calls, writes
from tests.e2e.platform_support import live_resources, tagged_arns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


# What a completed provision leaves (inventories/local), as live_resources() reads it.
PROVISIONED_KINDS = {
    "vpcs",
    "subnets",
    "security_groups",
    "internet_gateways",
    "load_balancers",
    "target_groups",
    "db_instances",
    "db_subnet_groups",
    "parameters",
    "roles",
    "log_groups",
    "repositories",
    "certificates",
    "clusters",
    "kms_keys",
    "alarms",
    "dashboards",
}
LOCK = "/ecs-prod/local/lock"


@pytest.fixture(scope="module")
def api(aws_api):
    aws_api.reset()
    return aws_api


@pytest.fixture
def empty(api):
    """Nothing of the environment in the account (reset when something is)."""
    if live_resources(api) or tagged_arns(api):
        api.reset()
    return api


def is_provisioned(api) -> bool:
    """Everything a provision makes is there, as provision leaves it: blue has the traffic and two
    tasks, green none, and no run holds the lock."""
    if set(live_resources(api)) != PROVISIONED_KINDS:
        return False
    held = api.client("ssm").get_parameters(Names=[LOCK])["Parameters"]
    return (
        not held
        and listener_weights(api) == {"blue": 100, "green": 0}
        and desired_counts(api) == {"blue": 2, "green": 0}
    )


@pytest.fixture
def provisioned(api):
    """The platform provisioned (from an empty account when it is not)."""
    if not is_provisioned(api):
        api.reset()
        run = run_playbook(api, "provision")
        assert run.returncode == 0, f"provisioning for the test:\n{run.tail()}"
        assert is_provisioned(api)
    return api


def test_check_mode_on_an_empty_account_reports_changes_and_creates_nothing(empty):
    api = empty
    run = run_playbook(api, "provision", "--check", "--diff")
    assert run.returncode == 0, run.tail()
    assert run.changed > 10, run.tail()
    assert tagged_arns(api) == []
    assert live_resources(api) == {}


def test_provision_from_empty_never_prints_the_password(empty, tmp_path):
    api = empty
    log = tmp_path / "ansible.log"
    run = run_playbook(api, "provision", "-vvv", env={"ANSIBLE_LOG_PATH": str(log)})
    assert run.returncode == 0, run.tail()
    assert run.changed > 20

    password = api.client("ssm").get_parameter(Name="/ecs-prod/local/db/password", WithDecryption=True)
    value = password["Parameter"]["Value"]
    assert password["Parameter"]["Type"] == "SecureString"
    assert len(value) == 32
    assert value not in run.stdout
    assert value not in run.stderr
    assert log.stat().st_size > 0
    assert value not in log.read_text(errors="replace")


def test_the_first_rerun_changes_nothing(provisioned):
    api = provisioned
    run = run_playbook(api, "provision")
    assert run.returncode == 0, run.tail()
    assert run.changed == 0, run.tail()


def test_check_mode_on_the_provisioned_account_reports_nothing(provisioned):
    api = provisioned
    run = run_playbook(api, "provision", "--check", "--diff")
    assert run.returncode == 0, run.tail()
    assert run.changed == 0, run.tail()


def test_provision_summary_shows_the_platform(provisioned):
    api = provisioned
    run = run_playbook(api, "provision")
    assert f"{PREFIX}-alb" in run.stdout
    assert "weights 443    blue 100 / green 0" in run.stdout
    assert "services       blue desired 2 / green desired 0" in run.stdout
    assert f"{PREFIX}-db." in run.stdout
    assert "postgres 15." in run.stdout


def test_provision_keeps_weights_and_desired_counts_set_behind_its_back(provisioned):
    api = provisioned
    set_listener_weights(api, {"blue": 0, "green": 100})
    api.client("ecs").update_service(cluster=PREFIX, service=f"{PREFIX}-green", desiredCount=2)

    try:
        run = run_playbook(api, "provision")
        assert run.returncode == 0, run.tail()
        assert run.changed == 0, run.tail()
        assert listener_weights(api) == {"blue": 0, "green": 100}
        assert desired_counts(api) == {"blue": 2, "green": 2}
    finally:  # as provision left it, for the next test
        set_listener_weights(api, {"blue": 100, "green": 0})
        api.client("ecs").update_service(cluster=PREFIX, service=f"{PREFIX}-green", desiredCount=0)


def test_resizing_the_database_needs_consent_shows_in_check_mode_and_applies_with_it(provisioned):
    api = provisioned
    rds, db = api.client("rds"), f"{PREFIX}-db"
    recorder = ApiRecorder(api.endpoint_url)
    before = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["DBInstanceClass"]
    assert before == "db.t4g.micro"
    resize = ("-e", "rds_instance_class=db.t4g.small")
    change = "instance class: db.t4g.micro -> db.t4g.small"
    try:
        # Refused, naming the change and how to consent, before anything is written.
        recorder.start()
        run = run_playbook(api, "provision", *resize)
        calls = ansible_calls(recorder.stop())
        out = " ".join(run.output.split())
        assert run.returncode != 0, run.tail()
        assert change in out and "re-run with -e platform_allow_disruptive=true" in out, run.tail()
        assert [c["action"] for c in calls if c["action"].startswith("Modify")] == []
        assert writes(calls) == [], writes(calls)
        assert any(c["action"] == "DescribeDBInstances" for c in calls)

        # --check --diff shows exactly that change, as a diff, and changes nothing.
        recorder.start()
        run = run_playbook(api, "provision", "--check", "--diff", *resize)
        calls = ansible_calls(recorder.stop())
        assert run.returncode == 0, run.tail()
        assert '-    "instance class": "db.t4g.micro"' in run.stdout, run.tail()
        assert '+    "instance class": "db.t4g.small"' in run.stdout, run.tail()
        assert "A real run would refuse: " + change in " ".join(run.output.split()), run.tail()
        assert writes(calls) == [], writes(calls)

        # With consent it applies.
        run = run_playbook(api, "provision", *resize, "-e", "platform_allow_disruptive=true")
        assert run.returncode == 0, run.tail()
        found = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
        assert found.get("PendingModifiedValues", {}).get("DBInstanceClass", found["DBInstanceClass"]) == "db.t4g.small"
    finally:  # as provision left it, for the next test
        rds.modify_db_instance(DBInstanceIdentifier=db, DBInstanceClass=before, ApplyImmediately=True)
    assert rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["DBInstanceClass"] == before


def test_teardown_leaves_nothing_and_a_second_teardown_changes_nothing(provisioned):
    api = provisioned
    # As in inventories/prod: the load balancer is protected against deletion, which AWS enforces.
    elbv2 = api.client("elbv2")
    arn = elbv2.describe_load_balancers(Names=[f"{PREFIX}-alb"])["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}]
    )
    with pytest.raises(botocore.exceptions.ClientError, match="OperationNotPermitted"):
        elbv2.delete_load_balancer(LoadBalancerArn=arn)

    # As in inventories/prod: a final snapshot (inventories/local skips it).
    run = run_playbook(api, "teardown", "-e", '{"rds_skip_final_snapshot": false}')
    assert run.returncode == 0, run.tail()
    assert f"Nothing tagged for {PREFIX} is left, but the DB snapshots kept on purpose" in " ".join(run.stdout.split())
    assert live_resources(api) == {}
    (final,) = kept_snapshots(api)
    assert final.startswith(f"{PREFIX}-db-final-"), final

    # Snapshots are deleted only when asked: not by a teardown that takes no final snapshot ...
    again = run_playbook(api, "teardown")
    assert again.returncode == 0, again.tail()
    assert again.changed == 0, again.tail()
    assert kept_snapshots(api) == [final]
    assert final in again.stdout, again.tail()
    # ... but by one told to (rds_delete_snapshots), which then leaves nothing at all.
    gone = run_playbook(api, "teardown", "-e", '{"rds_delete_snapshots": true}')
    assert gone.returncode == 0, gone.tail()
    assert gone.changed == 1, gone.tail()
    assert kept_snapshots(api) == []
    assert f"Nothing tagged for {PREFIX} is left." in gone.stdout, gone.tail()


def kept_snapshots(api) -> list[str]:
    found = api.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    return [s["DBSnapshotIdentifier"] for s in found]


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    [
        ('{"network_vpc_cidr": "10.0.0.0/33"}', "network_vpc_cidr"),
        ('{"network_vpc_cidr": "not-a-cidr"}', "network_vpc_cidr"),
        ('{"network_public_subnet_cidrs": ["10.1.1.0/24", "10.0.2.0/24"]}', "network_public_subnet_cidrs"),
        ('{"network_private_subnet_cidrs": ["10.0.11.0/24", "192.168.0.0/24"]}', "network_private_subnet_cidrs"),
        (
            '{"network_private_subnet_cidrs": ["10.0.1.128/25", "10.0.12.0/24"]}',
            "overlap: 10.0.1.0/24 and 10.0.1.128/25",
        ),
        (
            '{"network_public_subnet_cidrs": ["10.0.1.0/24", "10.0.1.128/25"]}',
            "network_public_subnet_cidrs: public subnets overlap: 10.0.1.0/24 and 10.0.1.128/25",
        ),
        ('{"rds_instance_class": "nonsense"}', "rds_instance_class"),
        ('{"ecs_task_cpu": "256", "ecs_task_memory": "4096"}', "ecs_task_memory"),
        ('{"network_availability_zones": ["us-east-1a"]}', "network_availability_zones"),
        ('{"platform_project": ""}', "platform_project"),
        ('{"rds_password_length": 4}', "rds_password_length"),
    ],
)
def test_bad_input_fails_before_any_api_call(api, extra_vars, named):
    before = api.request_count()
    run = run_playbook(api, "provision", "-e", extra_vars)
    assert run.returncode != 0, run.tail()
    assert named in run.output, run.tail()
    assert api.request_count() == before, "an API call was made before the input was rejected"


def test_an_unknown_environment_fails_before_any_api_call(api):
    before = api.request_count()
    run = run_playbook(api, "provision", "-i", "inventories/staging")
    assert run.returncode != 0, run.tail()
    assert "platform_environment" in run.output, run.tail()
    assert api.request_count() == before
