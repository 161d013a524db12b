"""The deploy role of the cicd role, proven on a local cloud with IAM enforcement on.

One cloud of its own (enforcement is a switch of the whole AWS API server, so it cannot be the shared
one): provisioned once with ``cicd_enabled`` (the OIDC provider and the deploy role for
``example-org/shop`` in the GitHub environment ``prod``) and the smallest sizes that still show a
blue/green swap (one task a colour, one gunicorn worker), v1 serving on blue, v2 published. Then moto's
IAM enforcement is switched on (``/moto-api/reset-auth`` 0: every later request must be signed by a
known identity and allowed by its policies; ``localcloud/patches/iam_auth_resources.py`` makes it check
the resource ARNs, ``sts_web_identity_trust.py`` the trust policy against the token's claims; the local
cloud's own dummy key, its root, which the data plane and the tasks use, stays unrestricted).

The credentials come from AssumeRoleWithWebIdentity with a GitHub-shaped token, as the workflow gets
them. The matrix, one test each, in this order (the allowed runs first, then the denied ones, which must
leave the platform as it was): tokens of another repository, branch, environment or audience are
refused; deploy, swap with canary steps, rollback and status succeed; an image push (the calls docker
push makes) reaches this environment's repository and no other; provision, teardown, reading the
database password and IAM, RDS, VPC and other services' writes are denied. What moto cannot enforce
(conditions such as ``iam:PassedToService``, PassRole itself) is tested on the policy document in
tests/unit/roles/test_cicd_policy.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request

import boto3
import botocore.exceptions
import pytest

from localcloud.harness import PREFIX, LocalCloud, healthy_targets, listener_weights, wait_for
from localcloud.oidc import github_token

# About 2.5 minutes alone on 2 quiet cores (a third of it the module's cloud), 6 with a load of 10 to 15.
# The ceiling is per test, the first one including the cloud's provisioning, which took 204 s (the longest
# step) with a load of 12 on 2 cores: room for a loaded machine, not for a hang.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

REPOSITORY = "example-org/shop"
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = f"repo:{REPOSITORY}:environment:prod"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ecs-prod/local/{PREFIX}-deploy"
PASSWORD = "/ecs-prod/local/db/password"
OTHER_REPOSITORY = "other-team/app"
DENIED = "is not authorized to perform"  # AWS's words in every denial, whatever the protocol
# What this environment's inventory would say, for provision and deploy alike (both render the task
# definition): the smallest platform that still swaps - one task a colour (a deploy sizes the idle colour
# like the active one), one gunicorn worker a task, its container checked every 5 s (a deploy waits for
# the first success, 15 s after the start by default).
SIZES = [
    "-e",
    json.dumps(
        {
            "ecs_initial_desired_counts": {"blue": 1, "green": 0},
            "ecs_app_workers": 1,
            "ecs_container_health_check": {
                "command": ["CMD", "python", "-m", "items_api.healthcheck"],
                "interval": 5,
                "timeout": 3,
                "retries": 3,
                "startPeriod": 90,
            },
        }
    ),
]
PROVISION = [
    "-e",
    "cicd_enabled=true",
    "-e",
    f"cicd_github_repository={REPOSITORY}",
    "-e",
    "cicd_github_environment=prod",
    *SIZES,
]


def token(sub: str = SUBJECT, aud: str = "sts.amazonaws.com") -> str:
    """A token with GitHub's claims (unsigned: the local cloud reads the claims, not the signature)."""
    return github_token(sub, aud, ISSUER)


def enforce(cloud: LocalCloud, count: str) -> None:
    """``0``: every request from now on is authenticated and authorized; ``inf``: none is (moto's default)."""
    request = urllib.request.Request(
        f"{cloud.endpoint_url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def assume(cloud: LocalCloud, web_token: str) -> dict:
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=cloud.endpoint_url)
    return sts.assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName="github-actions", WebIdentityToken=web_token
    )["Credentials"]


def client(cloud: LocalCloud, service: str, credentials: dict):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=cloud.endpoint_url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def timed(cloud: LocalCloud, name: str, *args: str):
    """A playbook run, its duration printed (``-s`` shows where the test's time goes)."""
    run = cloud.playbook(name, *args)
    print(f"\n{name}: {run.seconds:.1f} s")
    return run


@pytest.fixture(scope="module")
def cloud():
    cloud = LocalCloud()
    started = time.monotonic()
    cloud.up()
    try:
        run = timed(cloud, "provision", *PROVISION)
        assert run.returncode == 0, run.tail()
        # v1 for blue (its task starts meanwhile: the rollback needs it), v2 to deploy.
        cloud.cli("publish", "v1", "--redeploy")
        cloud.cli("publish", "v2")
        # Another team's repository in the same account, which the deploy role must not push to.
        cloud.client("ecr").create_repository(repositoryName=OTHER_REPOSITORY)
        print(f"\ncloud ready in {time.monotonic() - started:.1f} s")
        enforce(cloud, "0")
        try:
            yield cloud
        finally:
            enforce(cloud, "inf")
    finally:
        cloud.down(remove=True)


@pytest.fixture(scope="module")
def credentials(cloud):
    return assume(cloud, token())


@pytest.fixture(scope="module")
def as_deploy_role(credentials):
    """The extra vars that make a playbook run with the deploy role's credentials."""
    return [
        "-e",
        f"platform_aws_access_key={credentials['AccessKeyId']}",
        "-e",
        f"platform_aws_secret_key={credentials['SecretAccessKey']}",
        "-e",
        f"platform_aws_session_token={credentials['SessionToken']}",
    ]


@pytest.mark.parametrize(
    "web_token",
    [
        token(sub="repo:someone-else/shop:environment:prod"),
        token(sub=f"repo:{REPOSITORY}:ref:refs/heads/main"),
        token(sub=f"repo:{REPOSITORY}:environment:staging"),
        token(aud="sigstore"),
    ],
    ids=["other repository", "branch", "other environment", "other audience"],
)
def test_a_token_of_another_repository_branch_environment_or_audience_is_refused(cloud, web_token):
    with pytest.raises(botocore.exceptions.ClientError) as error:
        assume(cloud, web_token)
    assert error.value.response["Error"]["Code"] == "AccessDenied", error.value.response


def status_rows(output: str) -> dict[str, tuple[int, str]]:
    """{colour: (weight, version)} of status.yml's table."""
    return {
        m.group(1): (int(m.group(2)), m.group(3))
        for m in re.finditer(r"^\s*(?:- )?(blue|green)\*?\s+(\d+)%\s+\S+\s+(\S+)\s", output, re.M)
    }


def test_deploy_swap_with_canary_steps_rollback_and_status_succeed(cloud, as_deploy_role):
    run = timed(cloud, "deploy", "-e", "version=v2", *SIZES, *as_deploy_role)
    assert run.returncode == 0, run.tail()
    run = timed(cloud, "swap", "-e", "color=green", "-e", "canary=50,100", "-e", "bake_seconds=1", *as_deploy_role)
    assert run.returncode == 0, run.tail()
    assert "Send 50 % of the traffic to green" in run.stdout, run.tail()  # the canary step
    assert listener_weights(cloud) == {"blue": 0, "green": 100}
    # The rollback goes back to blue only once it is healthy (a gate, which fails rather than waits): v1's
    # task started before the deploy, so this normally returns at once.
    wait_for(lambda: healthy_targets(cloud, "blue") >= 1, timeout=120, what="blue healthy (the rollback's gate)")
    run = timed(cloud, "rollback", *as_deploy_role)
    assert run.returncode == 0, run.tail()
    assert listener_weights(cloud) == {"blue": 100, "green": 0}
    run = timed(cloud, "status", *as_deploy_role)
    assert run.returncode == 0, run.tail()
    assert status_rows(run.stdout) == {"blue": (100, "v1"), "green": (0, "v2")}, run.tail()


def push(ecr, repository: str, tag: str) -> None:
    """What ``docker push`` does with ECR's API: each blob checked, uploaded and completed, then the manifest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"version": tag}}}).encode()
    layer = f"the layer of {tag}".encode()
    blobs = []
    for blob in (config, layer):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest])
        upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload,
            partFirstByte=0,
            partLastByte=len(blob) - 1,
            layerPartBlob=blob,
        )
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest])
        blobs.append({"size": len(blob), "digest": digest})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **blobs[0]},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **blobs[1]}],
    }
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))


def test_an_image_push_reaches_this_environments_repository_only(cloud, credentials):
    ecr = client(cloud, "ecr", credentials)
    assert ecr.get_authorization_token()["authorizationData"]  # docker login
    push(ecr, PREFIX, "v3")
    pushed = cloud.client("ecr").describe_images(repositoryName=PREFIX, imageIds=[{"imageTag": "v3"}])
    assert pushed["imageDetails"], pushed

    with pytest.raises(botocore.exceptions.ClientError) as error:
        push(ecr, OTHER_REPOSITORY, "v3")
    assert error.value.response["Error"]["Code"] == "AccessDeniedException", error.value.response
    assert f"repository/{OTHER_REPOSITORY}" in error.value.response["Error"]["Message"]
    assert cloud.client("ecr").list_images(repositoryName=OTHER_REPOSITORY)["imageIds"] == []


def test_provision_is_denied(cloud, as_deploy_role):
    run = timed(cloud, "provision", *as_deploy_role)
    assert run.returncode != 0, run.tail()
    assert DENIED in run.output, run.tail()
    assert run.changed == 0, run.tail()


def test_teardown_is_denied(cloud, as_deploy_role):
    run = timed(cloud, "teardown", *as_deploy_role)
    assert run.returncode != 0, run.tail()
    # Refused at its first call the role lacks (today reading the dashboard, cloudwatch:GetDashboard), having
    # changed nothing; and (the last test) everything is still there.
    assert DENIED in run.output, run.tail()
    assert re.search(r"changed=0 +unreachable=0 +failed=1", run.output), run.tail()


DENIED_CALLS = {
    "the database password": ("ssm", "get_parameter", {"Name": PASSWORD, "WithDecryption": True}),
    "overwriting the password": (
        "ssm",
        "put_parameter",
        {"Name": PASSWORD, "Value": "mine", "Type": "SecureString", "Overwrite": True},
    ),
    "a new role": ("iam", "create_role", {"RoleName": "escalate", "AssumeRolePolicyDocument": "{}"}),
    "its own policy": (
        "iam",
        "put_role_policy",
        {"RoleName": f"{PREFIX}-deploy", "PolicyName": "more", "PolicyDocument": "{}"},
    ),
    "the VPCs": ("ec2", "describe_vpcs", {}),
    "deleting the database": (
        "rds",
        "delete_db_instance",
        {"DBInstanceIdentifier": f"{PREFIX}-db", "SkipFinalSnapshot": True},
    ),
    "another service": ("ecs", "update_service", {"cluster": PREFIX, "service": "another-service", "desiredCount": 0}),
    "deleting the repository": ("ecr", "delete_repository", {"repositoryName": PREFIX, "force": True}),
}


@pytest.mark.parametrize("what", DENIED_CALLS)
def test_the_password_and_other_writes_are_denied(cloud, credentials, what):
    service, method, params = DENIED_CALLS[what]
    with pytest.raises(botocore.exceptions.ClientError) as error:
        getattr(client(cloud, service, credentials), method)(**params)
    assert error.value.response["Error"]["Code"] in (
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
    ), error.value.response
    assert DENIED in error.value.response["Error"]["Message"], error.value.response


def test_the_denied_runs_changed_nothing(cloud):
    assert listener_weights(cloud) == {"blue": 100, "green": 0}
    assert cloud.client("rds").describe_db_instances(DBInstanceIdentifier=f"{PREFIX}-db")["DBInstances"]
    services = cloud.client("ecs").describe_services(cluster=PREFIX, services=[f"{PREFIX}-blue", f"{PREFIX}-green"])
    assert [s["status"] for s in services["services"]] == ["ACTIVE", "ACTIVE"]
    assert cloud.client("ecr").describe_repositories(repositoryNames=[PREFIX])["repositories"]
    assert cloud.client("iam").get_role(RoleName=f"{PREFIX}-deploy")["Role"]["Arn"] == ROLE_ARN
    assert cloud.client("ssm").get_parameter(Name=PASSWORD, WithDecryption=True)["Parameter"]["Value"] != "mine"
    assert healthy_targets(cloud, "blue") >= 1
