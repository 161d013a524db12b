"""The local AWS API with IAM enforcement on, as tests/e2e/test_deploy_identity.py uses it, on a small scale:
the trust policy of AssumeRoleWithWebIdentity against a token's claims (localcloud/patches/
sts_web_identity_trust.py), identity policies against the resources a call acts on and CloudWatch's IAM
prefix (iam_auth_resources.py), and the local dummy key as the account's root. A local AWS API of its own
(enforcement is a switch of the whole server), served from a thread of the test's process."""

from __future__ import annotations

import json
import urllib.request

import boto3
import botocore.exceptions
import pytest

from localcloud.awsapi import ApiServerThread
from localcloud.oidc import github_token

ISSUER = "token.actions.githubusercontent.com"
SUBJECT = "repo:example-org/shop:environment:prod"
LOCK = "arn:aws:ssm:us-east-1:123456789012:parameter/shop/prod/lock"


def token(sub: str = SUBJECT, aud: str = "sts.amazonaws.com", iss: str = f"https://{ISSUER}") -> str:
    return github_token(sub, aud, iss)


@pytest.fixture(scope="module")
def api():
    # In a thread of this process (enforcement is a switch of the whole server, turned off again below).
    api = ApiServerThread()
    iam, ssm = api.client("iam"), api.client("ssm")
    provider = iam.create_open_id_connect_provider(Url=f"https://{ISSUER}", ClientIDList=["sts.amazonaws.com"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider["OpenIDConnectProviderArn"]},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": SUBJECT}},
            }
        ],
    }
    api.role_arn = iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:PutParameter"], "Resource": LOCK},
            {"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "*"},
        ],
    }
    iam.put_role_policy(RoleName="deploy", PolicyName="deploy", PolicyDocument=json.dumps(policy))
    ssm.put_parameter(Name="/shop/prod/lock", Value="free", Type="String")
    ssm.put_parameter(Name="/shop/prod/db/password", Value="secret", Type="SecureString")
    enforce(api, "0")
    yield api
    enforce(api, "inf")
    api.stop()


def enforce(api, count: str) -> None:
    request = urllib.request.Request(
        f"{api.endpoint_url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def assume(api, web_token: str) -> dict:
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=api.endpoint_url)
    answer = sts.assume_role_with_web_identity(
        RoleArn=api.role_arn, RoleSessionName="ci-run", WebIdentityToken=web_token
    )
    return answer["Credentials"]


def client(api, service: str, credentials: dict):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=api.endpoint_url,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


@pytest.mark.parametrize(
    "web_token",
    [
        token(sub="repo:someone-else/shop:environment:prod"),
        token(sub="repo:example-org/shop:ref:refs/heads/main"),
        token(sub="repo:example-org/shop:environment:staging"),
        token(aud="sigstore"),
        token(iss="https://gitlab.example.com"),
        "not-a-jwt",
    ],
    ids=["other repository", "branch", "other environment", "other audience", "other issuer", "no token"],
)
def test_a_token_the_trust_policy_does_not_admit_is_refused(api, web_token):
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        assume(api, web_token)


def test_the_admitted_token_gets_credentials_that_reach_only_their_resources(api):
    credentials = assume(api, token())
    ssm = client(api, "ssm", credentials)
    assert ssm.get_parameter(Name="/shop/prod/lock")["Parameter"]["Value"] == "free"
    ssm.put_parameter(Name="/shop/prod/lock", Value="taken", Type="String", Overwrite=True)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ssm.get_parameter(Name="/shop/prod/db/password", WithDecryption=True)
    # As AWS answers a JSON service: AccessDeniedException (moto's XML would reach boto3 as an error "403"),
    # naming the action and the resource.
    assert error.value.response["Error"]["Code"] == "AccessDeniedException", error.value.response
    assert error.value.response["Error"]["Message"].endswith(
        "is not authorized to perform: ssm:GetParameter on resource: "
        "arn:aws:ssm:us-east-1:123456789012:parameter/shop/prod/db/password"
    ), error.value.response
    # CloudWatch signs as "monitoring"; IAM names its actions cloudwatch:...
    assert client(api, "cloudwatch", credentials).describe_alarms()["MetricAlarms"] == []
    with pytest.raises(botocore.exceptions.ClientError) as error:
        client(api, "iam", credentials).create_role(RoleName="escalate", AssumeRolePolicyDocument="{}")
    assert "AccessDenied" in str(error.value)


def test_the_local_dummy_key_is_the_accounts_root(api):
    assert (
        api.client("ssm").get_parameter(Name="/shop/prod/db/password")["Parameter"]["Name"] == "/shop/prod/db/password"
    )
    unknown = boto3.client(
        "ssm",
        region_name="us-east-1",
        endpoint_url=api.endpoint_url,
        aws_access_key_id="AKIAUNKNOWN",
        aws_secret_access_key="unknown",  # noqa: S106 - a key no identity has
    )
    with pytest.raises(botocore.exceptions.ClientError):
        unknown.get_parameter(Name="/shop/prod/lock")
