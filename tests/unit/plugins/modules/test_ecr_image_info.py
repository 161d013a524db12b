"""Unit tests for ecs_production.platform.ecr_image_info against an in-memory ECR that fails DescribeImages
as a whole when one requested tag is missing, as ECR does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import botocore.exceptions
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.ecs_production.platform.plugins.modules import ecr_image_info

ACCOUNT = "123456789012"
REPO = "myapp/items"
URI = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{REPO}"


def client_error(code: str, operation: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}}, operation)


def image(digest: str, tags: list[str], day: int, size: int = 1000) -> dict:
    return {
        "registryId": ACCOUNT,
        "repositoryName": REPO,
        "imageDigest": f"sha256:{digest * 64}",
        "imageTags": tags,
        "imagePushedAt": datetime(2025, 1, day, 12, 0, tzinfo=UTC),
        "imageSizeInBytes": size,
        "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
    }


class FakePaginator:
    def __init__(self, ecr):
        self.ecr = ecr

    def paginate(self, **params):
        self.ecr.calls.append(("paginate describe_images", params))
        self.ecr.check_repository(params.get("registryId"))
        return self

    def build_full_result(self):
        return {"imageDetails": [dict(i) for i in self.ecr.images]}


class FakeECR:
    def __init__(self, repository: bool = True, images: list[dict] | None = None):
        self.repository = repository
        self.images = images or []
        self.calls: list[tuple[str, dict]] = []

    def check_repository(self, registry_id):
        if not self.repository or registry_id not in (None, ACCOUNT):
            raise client_error("RepositoryNotFoundException", "DescribeRepositories")

    def describe_repositories(self, aws_retry=False, **params):
        assert aws_retry
        self.calls.append(("describe_repositories", params))
        assert params["repositoryNames"] == [REPO]
        self.check_repository(params.get("registryId"))
        return {
            "repositories": [
                {
                    "repositoryArn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPO}",
                    "registryId": ACCOUNT,
                    "repositoryName": REPO,
                    "repositoryUri": URI,
                    "createdAt": datetime(2025, 1, 1, tzinfo=UTC),
                    "imageTagMutability": "IMMUTABLE",
                }
            ]
        }

    def describe_images(self, aws_retry=False, **params):
        assert aws_retry
        self.calls.append(("describe_images", params))
        assert len(params["imageIds"]) <= 100
        self.check_repository(params.get("registryId"))
        found = []
        for image_id in params["imageIds"]:
            matches = [i for i in self.images if image_id["imageTag"] in i["imageTags"]]
            if not matches:
                raise client_error("ImageNotFoundException", "DescribeImages")
            found.extend(m for m in matches if m not in found)
        return {"imageDetails": [dict(i) for i in found]}

    def get_paginator(self, operation):
        assert operation == "describe_images"
        return FakePaginator(self)

    def image_calls(self) -> list[list[str]]:
        return [[i["imageTag"] for i in params["imageIds"]] for name, params in self.calls if name == "describe_images"]


def info(ecr, tags, registry_id=None):
    return ecr_image_info.image_info(ecr, REPO, registry_id, tags)


def test_a_missing_repository_is_reported_not_failed():
    ecr = FakeECR(repository=False)
    result = info(ecr, ["v1"])
    assert result == {
        "changed": False,
        "exists": False,
        "found": False,
        "images": [],
        "missing_tags": ["v1"],
        "digests": {},
    }
    assert [name for name, _params in ecr.calls] == ["describe_repositories"]


def test_a_repository_without_the_tag_lists_it_missing():
    result = info(FakeECR(images=[image("a", ["v0"], 1)]), ["v1"])
    assert result["exists"] and not result["found"]
    assert result["missing_tags"] == ["v1"] and result["images"] == [] and result["digests"] == {}
    assert result["repository"] == {
        "name": REPO,
        "uri": URI,
        "arn": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{REPO}",
        "registry_id": ACCOUNT,
        "image_tag_mutability": "IMMUTABLE",
        "created_at": "2025-01-01T00:00:00+00:00",
    }


def test_a_present_tag_is_found_with_its_image_in_one_call():
    ecr = FakeECR(images=[image("a", ["v1"], 2, size=52428800)])
    result = info(ecr, ["v1"])
    assert result["found"] and result["missing_tags"] == []
    assert result["images"] == [
        {
            "tags": ["v1"],
            "digest": "sha256:" + "a" * 64,
            "uri": f"{URI}@sha256:" + "a" * 64,
            "pushed_at": "2025-01-02T12:00:00+00:00",
            "size": 52428800,
            "media_type": "application/vnd.docker.distribution.manifest.v2+json",
        }
    ]
    assert result["digests"] == {"v1": "sha256:" + "a" * 64}
    assert ecr.image_calls() == [["v1"]]


def test_several_tags_one_missing_falls_back_to_one_call_per_tag():
    ecr = FakeECR(images=[image("a", ["v1", "latest"], 2), image("b", ["v2"], 3)])
    result = info(ecr, ["latest", "v3", "v2", "v1"])
    assert not result["found"]
    assert result["missing_tags"] == ["v3"]
    # One image per digest, in the order of the first tag naming each; each image lists all its tags.
    assert [i["tags"] for i in result["images"]] == [["latest", "v1"], ["v2"]]
    assert result["digests"] == {"latest": "sha256:" + "a" * 64, "v2": "sha256:" + "b" * 64, "v1": "sha256:" + "a" * 64}
    assert ecr.image_calls() == [["latest", "v3", "v2", "v1"], ["latest"], ["v3"], ["v2"], ["v1"]]


def test_several_tags_all_present_take_one_call():
    ecr = FakeECR(images=[image("a", ["v1", "latest"], 2), image("b", ["v2"], 3)])
    result = info(ecr, ["v1", "v2", "latest"])
    assert result["found"] and result["missing_tags"] == []
    assert [i["digest"][-1] for i in result["images"]] == ["a", "b"]
    assert ecr.image_calls() == [["v1", "v2", "latest"]]


def test_more_than_100_tags_are_asked_for_in_batches_of_100():
    tags = [f"t{n}" for n in range(250)]
    ecr = FakeECR(images=[image("a", tags, 2)])
    result = info(ecr, tags)
    assert result["found"] and len(result["images"]) == 1
    assert [len(batch) for batch in ecr.image_calls()] == [100, 100, 50]


def test_without_tags_every_image_is_listed_newest_first():
    ecr = FakeECR(images=[image("a", ["v1"], 2), image("c", [], 9), image("b", ["v2", "latest"], 5)])
    result = info(ecr, [])
    assert result["found"] and result["missing_tags"] == [] and result["digests"] == {}
    assert [i["digest"][-1] for i in result["images"]] == ["c", "b", "a"]
    assert result["images"][0]["tags"] == []
    assert [name for name, _params in ecr.calls] == ["describe_repositories", "paginate describe_images"]


def test_the_registry_id_is_passed_on_every_call():
    ecr = FakeECR(images=[image("a", ["v1"], 2)])
    assert info(ecr, ["v1"], registry_id=ACCOUNT)["found"]
    assert all(params.get("registryId") == ACCOUNT for _name, params in ecr.calls)
    assert not info(FakeECR(), ["v1"], registry_id="999999999999")["exists"]


def test_a_repository_deleted_between_the_calls_holds_none_of_the_tags():
    ecr = FakeECR(images=[image("a", ["v1"], 2)])
    original = ecr.describe_repositories

    def describe_then_delete(**params):
        response = original(**params)
        ecr.repository = False
        return response

    ecr.describe_repositories = describe_then_delete
    result = info(ecr, ["v1", "v2"])
    assert result["exists"] and not result["found"] and result["missing_tags"] == ["v1", "v2"]


# ---- main() -------------------------------------------------------------------------------------------


@pytest.fixture
def fake_ecr(monkeypatch):
    ecr = FakeECR(images=[image("a", ["v1", "latest"], 2)])
    ecr.made = []

    def client(_self, service, retry_decorator=None, **_kwargs):
        ecr.made.append((service, retry_decorator))
        return ecr

    monkeypatch.setattr(AnsibleAWSModule, "client", client)
    return ecr


def run_main(capsys, **args):
    args.setdefault("region", "us-east-1")
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        ecr_image_info.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("check_mode", [False, True], ids=["apply", "check"])
def test_main_reports_without_change_in_and_out_of_check_mode(fake_ecr, capsys, check_mode):
    code, result = run_main(capsys, name=REPO, image_tags=["v1", "v1", "v9"], _ansible_check_mode=check_mode)
    assert code == 0 and not result["changed"]
    assert result["exists"] and not result["found"] and result["missing_tags"] == ["v9"]
    assert fake_ecr.made[0][0] == "ecr" and fake_ecr.made[0][1] is not None
    assert fake_ecr.image_calls()[0] == ["v1", "v9"]  # duplicates asked for once


def test_main_refuses_an_empty_tag_before_any_client(fake_ecr, capsys):
    code, result = run_main(capsys, repository_name=REPO, image_tags=["v1", ""])
    assert code == 1 and "No AWS call was made" in result["msg"]
    assert fake_ecr.made == []


def test_main_reports_aws_errors(fake_ecr, capsys):
    def denied(**_kwargs):
        raise client_error("AccessDeniedException", "DescribeRepositories")

    fake_ecr.describe_repositories = denied
    code, result = run_main(capsys, repository_name=REPO)
    assert code == 1 and "Failed to describe repository" in result["msg"]
