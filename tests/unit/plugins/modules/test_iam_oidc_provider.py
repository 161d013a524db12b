"""Unit tests for ecs_production.platform.iam_oidc_provider: input refused before any call, and main() over a
fake IAM that records every call - create, a no-op in two reads, audiences, thumbprints and tags converged,
check mode without writes, diff, deletion (idempotent) and a failing call."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.ecs_production.platform.plugins.modules import iam_oidc_provider as mod

URL = "https://token.actions.githubusercontent.com"
ARN = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
TAGS = {"Project": "ecs-prod", "ManagedBy": "ecs_production.platform"}
PRESENT = {"url": URL, "client_ids": ["sts.amazonaws.com"], "tags": TAGS}
WRITES = (
    "create_open_id_connect_provider",
    "add_client_id_to_open_id_connect_provider",
    "remove_client_id_from_open_id_connect_provider",
    "update_open_id_connect_provider_thumbprint",
    "tag_open_id_connect_provider",
    "untag_open_id_connect_provider",
    "delete_open_id_connect_provider",
)


def client_error(code: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": f"{code} from the fake"}}, operation)


class FakeIAM:
    """OIDC providers in memory, as IAM answers for them; every call recorded as (name, params)."""

    def __init__(self):
        self.providers: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, str] = {}

    def add(self, url=URL, client_ids=("sts.amazonaws.com",), thumbprints=(), tags=None) -> str:
        arn = f"arn:aws:iam::123456789012:oidc-provider/{url[len('https://') :]}"
        self.providers[arn] = {
            "Url": url[len("https://") :],
            "ClientIDList": list(client_ids),
            "ThumbprintList": list(thumbprints),
            "Tags": dict(TAGS if tags is None else tags),
        }
        return arn

    def names(self) -> list[str]:
        return [name for name, _params in self.calls]

    def writes(self) -> list[str]:
        return [name for name in self.names() if name in WRITES]

    def _record(self, name: str, params: dict, operation: str) -> None:
        self.calls.append((name, params))
        if name in self.fail:
            raise client_error(self.fail[name], operation)

    def _find(self, arn: str, operation: str) -> dict:
        if arn not in self.providers:
            raise client_error("NoSuchEntity", operation)
        return self.providers[arn]

    def list_open_id_connect_providers(self, aws_retry, **params):  # noqa: ARG002 - the wrappers ask for retries
        self._record("list_open_id_connect_providers", params, "ListOpenIDConnectProviders")
        return {"OpenIDConnectProviderList": [{"Arn": arn} for arn in self.providers]}

    def get_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("get_open_id_connect_provider", params, "GetOpenIDConnectProvider")
        found = self._find(params["OpenIDConnectProviderArn"], "GetOpenIDConnectProvider")
        return {
            "Url": found["Url"],
            "ClientIDList": list(found["ClientIDList"]),
            "ThumbprintList": list(found["ThumbprintList"]),
            "Tags": [{"Key": k, "Value": v} for k, v in found["Tags"].items()],
        }

    def create_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("create_open_id_connect_provider", params, "CreateOpenIDConnectProvider")
        arn = self.add(
            url=params["Url"],
            client_ids=params["ClientIDList"],
            thumbprints=params.get("ThumbprintList", []),
            tags={t["Key"]: t["Value"] for t in params.get("Tags", [])},
        )
        return {"OpenIDConnectProviderArn": arn}

    def add_client_id_to_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("add_client_id_to_open_id_connect_provider", params, "AddClientIDToOpenIDConnectProvider")
        self._find(params["OpenIDConnectProviderArn"], "AddClientID")["ClientIDList"].append(params["ClientID"])

    def remove_client_id_from_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("remove_client_id_from_open_id_connect_provider", params, "RemoveClientID")
        self._find(params["OpenIDConnectProviderArn"], "RemoveClientID")["ClientIDList"].remove(params["ClientID"])

    def update_open_id_connect_provider_thumbprint(self, aws_retry, **params):  # noqa: ARG002
        self._record("update_open_id_connect_provider_thumbprint", params, "UpdateThumbprint")
        self._find(params["OpenIDConnectProviderArn"], "UpdateThumbprint")["ThumbprintList"] = params["ThumbprintList"]

    def tag_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("tag_open_id_connect_provider", params, "TagOpenIDConnectProvider")
        tags = self._find(params["OpenIDConnectProviderArn"], "TagOpenIDConnectProvider")["Tags"]
        tags.update({t["Key"]: t["Value"] for t in params["Tags"]})

    def untag_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("untag_open_id_connect_provider", params, "UntagOpenIDConnectProvider")
        tags = self._find(params["OpenIDConnectProviderArn"], "UntagOpenIDConnectProvider")["Tags"]
        for key in params["TagKeys"]:
            tags.pop(key, None)

    def delete_open_id_connect_provider(self, aws_retry, **params):  # noqa: ARG002
        self._record("delete_open_id_connect_provider", params, "DeleteOpenIDConnectProvider")
        self._find(params["OpenIDConnectProviderArn"], "DeleteOpenIDConnectProvider")
        del self.providers[params["OpenIDConnectProviderArn"]]


@pytest.fixture
def iam(monkeypatch):
    client = FakeIAM()
    made = []

    def fake_client(_self, service, retry_decorator=None):
        made.append((service, retry_decorator))
        return client

    monkeypatch.setattr(mod.AnsibleAWSModule, "client", fake_client)
    client.made = made
    return client


def run(capsys, check_mode=False, diff=False, **args) -> dict:
    params = dict({"region": "us-east-1", "_ansible_check_mode": check_mode, "_ansible_diff": diff}, **args)
    with patch_module_args(params), pytest.raises(SystemExit) as exit_info:
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert (exit_info.value.code != 0) == bool(result.get("failed")), result
    return result


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"url": "http://token.actions.githubusercontent.com"}, "url must be https://"),
        ({"url": URL + "/"}, "without a trailing slash"),
        ({"url": URL, "thumbprints": ["abc"]}, "thumbprints must be 40 hexadecimal digits each, not 'abc'"),
        ({"url": URL, "client_ids": []}, "client_ids must list at least one"),
    ],
)
def test_bad_input_is_refused_before_any_client(iam, capsys, params, problem):
    result = run(capsys, **params)
    assert result["failed"] and problem in result["msg"] and "No AWS call was made" in result["msg"]
    assert iam.made == [] and iam.calls == []


def test_create_then_a_rerun_changes_nothing_in_two_reads(iam, capsys):
    created = run(capsys, **PRESENT)
    assert created["changed"] and created["arn"] == ARN
    assert iam.writes() == ["create_open_id_connect_provider"]
    sent = iam.calls[-1][1]
    assert sent["Url"] == URL and sent["ClientIDList"] == ["sts.amazonaws.com"] and "ThumbprintList" not in sent
    assert iam.made[0][0] == "iam" and iam.made[0][1] is mod.IAM_RETRY
    iam.calls.clear()
    again = run(capsys, **PRESENT)
    assert not again["changed"] and again["changes"] == []
    assert iam.names() == ["list_open_id_connect_providers", "get_open_id_connect_provider"]
    assert again["client_ids"] == ["sts.amazonaws.com"] and again["tags"] == TAGS


def test_a_new_provider_needs_its_audiences(iam, capsys):
    result = run(capsys, url=URL)
    assert result["failed"] and "client_ids is required" in result["msg"]
    assert iam.writes() == []


def test_check_mode_writes_nothing_and_diff_shows_the_change(iam, capsys):
    result = run(capsys, check_mode=True, diff=True, **PRESENT)
    assert result["changed"] and result["changes"] == [f"create provider {URL}"] and "arn" not in result
    assert result["diff"] == {
        "before": {},
        "after": {"client_ids": ["sts.amazonaws.com"], "thumbprints": [], "tags": TAGS},
    }
    assert iam.writes() == [] and iam.providers == {}


def test_audiences_thumbprints_and_tags_are_converged(iam, capsys):
    arn = iam.add(client_ids=["sigstore"], thumbprints=["a" * 40], tags={"Project": "ecs-prod", "Old": "x"})
    thumbprint = "B" * 40
    result = run(capsys, diff=True, thumbprints=[thumbprint], **PRESENT)
    assert result["changed"]
    assert result["changes"] == [
        "add audience sts.amazonaws.com",
        "remove audience sigstore",
        "update thumbprints",
        "untag Old",
        "tag ManagedBy",
    ]
    found = iam.providers[arn]
    assert found["ClientIDList"] == ["sts.amazonaws.com"] and found["ThumbprintList"] == ["b" * 40]
    assert found["Tags"] == TAGS
    assert result["diff"]["before"]["client_ids"] == ["sigstore"]
    assert result["diff"]["after"] == {"client_ids": ["sts.amazonaws.com"], "thumbprints": ["b" * 40], "tags": TAGS}


def test_options_not_given_are_left_as_they_are(iam, capsys):
    iam.add(client_ids=["sigstore"], thumbprints=["a" * 40], tags={"Other": "y"})
    result = run(capsys, url=URL)
    assert not result["changed"] and iam.writes() == []
    assert result["client_ids"] == ["sigstore"] and result["tags"] == {"Other": "y"}


def test_check_mode_on_an_existing_provider_writes_nothing(iam, capsys):
    arn = iam.add(client_ids=["sigstore"])
    result = run(capsys, check_mode=True, **PRESENT)
    assert result["changed"] and "add audience sts.amazonaws.com" in result["changes"]
    assert iam.writes() == [] and iam.providers[arn]["ClientIDList"] == ["sigstore"]


def test_absent_deletes_and_is_idempotent(iam, capsys):
    iam.add()
    gone = run(capsys, url=URL, state="absent")
    assert gone["changed"] and iam.writes() == ["delete_open_id_connect_provider"] and iam.providers == {}
    again = run(capsys, url=URL, state="absent")
    assert not again["changed"] and iam.writes() == ["delete_open_id_connect_provider"]


def test_absent_in_check_mode_keeps_it(iam, capsys):
    iam.add()
    result = run(capsys, check_mode=True, url=URL, state="absent")
    assert result["changed"] and iam.writes() == [] and len(iam.providers) == 1


def test_another_issuers_provider_is_not_this_one(iam, capsys):
    iam.add(url="https://gitlab.example.com")
    result = run(capsys, **PRESENT)
    assert result["changes"] == [f"create provider {URL}"] and len(iam.providers) == 2


def test_a_failing_call_fails_naming_the_provider(iam, capsys):
    iam.fail["create_open_id_connect_provider"] = "LimitExceeded"
    result = run(capsys, **PRESENT)
    assert result["failed"] and result["msg"].startswith(URL) and "create the OIDC provider" in result["msg"]


def test_shared_audiences_are_kept_without_purge(iam, capsys):
    arn = iam.add(client_ids=["sigstore"])
    result = run(capsys, purge_client_ids=False, **PRESENT)
    assert result["changes"] == ["add audience sts.amazonaws.com"] and iam.writes() == [
        "add_client_id_to_open_id_connect_provider"
    ]
    assert iam.providers[arn]["ClientIDList"] == ["sigstore", "sts.amazonaws.com"]
    assert result["client_ids"] == ["sigstore", "sts.amazonaws.com"]
