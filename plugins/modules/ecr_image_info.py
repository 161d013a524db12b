#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: ecr_image_info
version_added: 0.1.0
short_description: Tell whether image tags exist in an ECR repository, and which images they name
description:
  - Describes an Amazon ECR repository and the images in it, so that a deploy can check that the image
    it is about to roll out exists before it changes anything.
  - With O(image_tags), reports the images those tags name, the tags that are missing (RV(missing_tags))
    and whether all of them exist (RV(found)). Without it, reports every image in the repository.
  - A repository that does not exist is not an error; the module returns RV(exists=false) and RV(found=false).
  - The module never changes anything.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  repository_name:
    description:
      - Name of the repository, for example V(myapp/items).
    required: true
    aliases: ['name']
    type: str
  image_tags:
    description:
      - The tags to look for, for example V([v42, latest]).
      - When not set or empty, every image of the repository is listed.
    type: list
    elements: str
  registry_id:
    description:
      - The AWS account ID of the registry that holds the repository.
      - The default is the account of the credentials in use.
    type: str
notes:
  - The module needs C(ecr:DescribeRepositories) and C(ecr:DescribeImages).
  - DescribeImages fails as a whole when one of several requested tags is missing; the module then asks
    for the tags one by one to tell which are missing.
seealso:
  - module: community.aws.ecs_ecr
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Check that the image to deploy exists
  ecs_production.platform.ecr_image_info:
    repository_name: myapp/items
    image_tags: ["{{ image_tag }}"]
  register: image

- name: Stop before touching anything if it does not
  ansible.builtin.assert:
    that: image.found
    fail_msg: >-
      Image tag(s) {{ image.missing_tags | join(', ') }} not found in ECR repository myapp/items
      {{ '' if image.exists else '(the repository does not exist)' }}.

- name: Deploy the image by digest, so a tag moved meanwhile does not change what runs
  ansible.builtin.set_fact:
    image_uri: "{{ image.images[0].uri }}"

- name: List every image of a repository of another account
  ecs_production.platform.ecr_image_info:
    repository_name: base/python
    registry_id: "123456789012"
  register: base_images
"""

RETURN = r"""
exists:
  description: Whether the repository exists.
  returned: always
  type: bool
  sample: true
found:
  description:
    - Whether the repository exists and holds every tag of O(image_tags).
    - Without O(image_tags), whether the repository exists.
  returned: always
  type: bool
  sample: true
missing_tags:
  description: The tags of O(image_tags) that are not in the repository, in the order given.
  returned: always
  type: list
  elements: str
  sample: ["v43"]
digests:
  description: The image digest each tag of O(image_tags) that exists names.
  returned: always
  type: dict
  sample: {"v42": "sha256:5b0c3e7d0a1e4e2a9d6c8f7b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e"}
repository:
  description: The repository.
  returned: when the repository exists
  type: dict
  contains:
    name:
      description: Name of the repository.
      type: str
      sample: myapp/items
    uri:
      description: URI of the repository, to pull from.
      type: str
      sample: 123456789012.dkr.ecr.us-east-1.amazonaws.com/myapp/items
    arn:
      description: ARN of the repository.
      type: str
      sample: arn:aws:ecr:us-east-1:123456789012:repository/myapp/items
    registry_id:
      description: The account ID of the registry.
      type: str
      sample: "123456789012"
    image_tag_mutability:
      description: Whether a tag can be moved to another image (C(MUTABLE)) or not (C(IMMUTABLE)).
      type: str
      sample: IMMUTABLE
    created_at:
      description: When the repository was created, in ISO 8601.
      type: str
      sample: "2025-01-31T12:00:00+00:00"
images:
  description:
    - The images the tags of O(image_tags) name, once each, in the order of the first tag naming each.
    - Without O(image_tags), every image of the repository, the most recently pushed first.
  returned: always
  type: list
  elements: dict
  contains:
    tags:
      description: All the tags of the image, sorted.
      type: list
      elements: str
      sample: ["latest", "v42"]
    digest:
      description: Digest of the image manifest.
      type: str
      sample: sha256:5b0c3e7d0a1e4e2a9d6c8f7b1a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e
    uri:
      description: The image's URI by digest, C(<repository uri>@<digest>).
      type: str
      sample: 123456789012.dkr.ecr.us-east-1.amazonaws.com/myapp/items@sha256:5b0c3e7d0a1e4e2a9d6c8f7b1a2c3d4e
    pushed_at:
      description: When the image was pushed, in ISO 8601.
      type: str
      sample: "2025-01-31T12:00:00+00:00"
    size:
      description: Size of the image in bytes, as ECR reports it.
      type: int
      sample: 52428800
    media_type:
      description: Media type of the image manifest.
      type: str
      sample: application/vnd.docker.distribution.manifest.v2+json
"""

from typing import Any
from typing import Dict
from typing import List
from typing import Optional
from typing import Tuple

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

MAX_IMAGE_IDS = 100  # DescribeImages takes at most 100 image IDs
ecr_retry = AWSRetry.jittered_backoff()


class RepositoryErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("RepositoryNotFoundException")


class ImageErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        # A repository deleted since it was described holds none of the tags either.
        return is_boto3_error_code(["ImageNotFoundException", "RepositoryNotFoundException"])


# ---- AWS calls ----------------------------------------------------------------------------------


def registry(registry_id: Optional[str]) -> Dict[str, str]:
    return {"registryId": registry_id} if registry_id else {}


@RepositoryErrorHandler.list_error_handler("describe repository")
def describe_repository(client, name: str, registry_id: Optional[str]) -> Optional[Dict[str, Any]]:
    response = client.describe_repositories(aws_retry=True, repositoryNames=[name], **registry(registry_id))
    return response["repositories"][0] if response.get("repositories") else None


@ImageErrorHandler.list_error_handler("describe images")
def describe_tagged_images(client, name: str, registry_id: Optional[str], tags: List[str]) -> Optional[List[Dict]]:
    """The images the tags name; None when one of them (or the repository) is missing."""
    image_ids = [{"imageTag": tag} for tag in tags]
    response = client.describe_images(aws_retry=True, repositoryName=name, imageIds=image_ids, **registry(registry_id))
    return response.get("imageDetails", [])


@ImageErrorHandler.list_error_handler("list images", [])
def list_images(client, name: str, registry_id: Optional[str]) -> List[Dict[str, Any]]:
    params = dict(repositoryName=name, **registry(registry_id))
    return paginated_query_with_retries(client, "describe_images", ecr_retry, **params)["imageDetails"]


# ---- decisions ----------------------------------------------------------------------------------


def unique(items: List[str]) -> List[str]:
    return list(dict.fromkeys(items))


def find_tags(client, name: str, registry_id: Optional[str], tags: List[str]) -> Dict[str, Dict[str, Any]]:
    """The image each tag names, for the tags that exist: one call per 100 tags while all exist, else per tag."""
    found: Dict[str, Dict[str, Any]] = {}
    for start in range(0, len(tags), MAX_IMAGE_IDS):
        batch = tags[start : start + MAX_IMAGE_IDS]
        images = describe_tagged_images(client, name, registry_id, batch)
        if images is None:
            images = [
                image for tag in batch for image in describe_tagged_images(client, name, registry_id, [tag]) or []
            ]
        for image in images:
            for tag in image.get("imageTags", []):
                if tag in batch:
                    found[tag] = image
    return found


def isoformat(moment: Any) -> Optional[str]:
    return moment.isoformat() if hasattr(moment, "isoformat") else moment


def pushed_at(image: Dict[str, Any]) -> Tuple[bool, Any]:
    """Sort key: the images without a push time last (first once reversed: never, ECR always has one)."""
    moment = image.get("imagePushedAt")
    return (moment is not None, moment or 0)


def repository_view(repository: Dict[str, Any]) -> Dict[str, Any]:
    fields = {
        "name": "repositoryName",
        "uri": "repositoryUri",
        "arn": "repositoryArn",
        "registry_id": "registryId",
        "image_tag_mutability": "imageTagMutability",
        "created_at": "createdAt",
    }
    view = {key: repository[field] for key, field in fields.items() if repository.get(field) is not None}
    if "created_at" in view:
        view["created_at"] = isoformat(view["created_at"])
    return view


def image_view(image: Dict[str, Any], repository_uri: str) -> Dict[str, Any]:
    view = {
        "tags": sorted(image.get("imageTags", [])),
        "digest": image["imageDigest"],
        "uri": f"{repository_uri}@{image['imageDigest']}",
        "pushed_at": isoformat(image.get("imagePushedAt")),
        "size": image.get("imageSizeInBytes"),
    }
    if image.get("imageManifestMediaType"):
        view["media_type"] = image["imageManifestMediaType"]
    return view


def image_info(client, name: str, registry_id: Optional[str], tags: List[str]) -> Dict[str, Any]:
    result: Dict[str, Any] = {"changed": False, "images": [], "missing_tags": list(tags), "digests": {}}
    repository = describe_repository(client, name, registry_id)
    if repository is None:
        result.update(exists=False, found=False)
        return result
    result.update(exists=True, repository=repository_view(repository))
    uri = repository.get("repositoryUri", "")
    if tags:
        by_tag = find_tags(client, name, registry_id, tags)
        images: Dict[str, Dict[str, Any]] = {}
        for tag in tags:
            if tag in by_tag:
                images.setdefault(by_tag[tag]["imageDigest"], by_tag[tag])
        result["images"] = [image_view(image, uri) for image in images.values()]
        result["missing_tags"] = [tag for tag in tags if tag not in by_tag]
        result["digests"] = {tag: by_tag[tag]["imageDigest"] for tag in tags if tag in by_tag}
    else:
        listed = sorted(list_images(client, name, registry_id), key=pushed_at, reverse=True)
        result["images"] = [image_view(image, uri) for image in listed]
    result["found"] = not result["missing_tags"]
    return result


def main() -> None:
    argument_spec = dict(
        repository_name=dict(type="str", required=True, aliases=["name"]),
        image_tags=dict(type="list", elements="str"),
        registry_id=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    tags = unique(params["image_tags"] or [])
    if not params["repository_name"] or any(not tag for tag in tags):
        module.fail_json(msg="repository_name and every tag of image_tags must be non-empty. No AWS call was made.")

    client = module.client("ecr", retry_decorator=ecr_retry)
    try:
        result = image_info(client, params["repository_name"], params["registry_id"], tags)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
