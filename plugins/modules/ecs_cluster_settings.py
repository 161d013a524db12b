#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: ecs_cluster_settings
version_added: 0.1.0
short_description: The settings (Container Insights) and tags of an ECS cluster, written only when they differ
description:
  - Sets the C(containerInsights) setting of an existing ECS cluster, and its tags.
  - Reads the cluster with one C(DescribeClusters) call (with its settings and tags) and calls C(UpdateCluster),
    C(TagResource) or C(UntagResource) only when something differs.
  - M(community.aws.ecs_tag) tags a cluster with two reads of its own.
  - M(community.aws.ecs_cluster) creates the cluster and its capacity providers but does not manage its settings.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  cluster:
    description: The cluster's name or ARN. The cluster must exist and be C(ACTIVE).
    type: str
    required: true
  container_insights:
    description:
      - C(enabled) collects CloudWatch Container Insights metrics for the cluster's services and tasks, C(enhanced)
        adds per-container metrics, C(disabled) collects none.
      - Container Insights is billed as custom metrics and log ingestion, see U(https://aws.amazon.com/cloudwatch/pricing/).
    type: str
    choices: [enabled, enhanced, disabled]
    required: true
  tags:
    description: Tags the cluster should have. Left out, the tags are not read or changed.
    type: dict
  purge_tags:
    description: Whether tags not in I(tags) are removed.
    type: bool
    default: false
notes:
  - Supports check mode and diff mode (the settings before and after).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Container Insights on the cluster, and its tags
  ecs_production.platform.ecs_cluster_settings:
    cluster: prod
    container_insights: enabled
    tags: {Project: shop, Environment: prod}

- name: Off again
  ecs_production.platform.ecs_cluster_settings:
    cluster: prod
    container_insights: disabled
"""

RETURN = r"""
settings:
  description: The cluster's settings after the run (in check mode, what they would be).
  returned: always
  type: dict
  sample: {containerInsights: enabled}
tags:
  description: The cluster's tags after the run (in check mode, what they would be); with I(tags) only.
  returned: when tags is given
  type: dict
  sample: {Project: shop}
cluster_arn:
  description: The cluster's ARN.
  returned: always
  type: str
  sample: arn:aws:ecs:us-east-1:123456789012:cluster/prod
"""

from typing import Any, Dict, List

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ECS_RETRY = AWSRetry.jittered_backoff(retries=10)
SETTING = "containerInsights"


class EcsErrorHandler(AWSErrorHandler):
    pass


@EcsErrorHandler.common_error_handler("describe cluster")
def describe_cluster(client, cluster: str, tags: bool = False) -> Dict[str, Any]:
    """The ACTIVE cluster as DescribeClusters returns it with its settings (and tags), {} when there is none."""
    include = ["SETTINGS", "TAGS"] if tags else ["SETTINGS"]
    found = client.describe_clusters(aws_retry=True, clusters=[cluster], include=include)
    return next((c for c in found.get("clusters", []) if c.get("status") == "ACTIVE"), {})


@EcsErrorHandler.common_error_handler("update cluster settings")
def update_settings(client, cluster: str, value: str) -> Dict[str, Any]:
    return client.update_cluster(aws_retry=True, cluster=cluster, settings=[{"name": SETTING, "value": value}])


def settings_of(cluster: Dict[str, Any]) -> Dict[str, str]:
    """The cluster's settings as a dict. A cluster that never had the setting has it disabled."""
    settings = {s["name"]: s["value"] for s in cluster.get("settings") or [] if "name" in s}
    settings.setdefault(SETTING, "disabled")
    return settings


@EcsErrorHandler.common_error_handler("tag cluster")
def tag_cluster(client, arn: str, tags: Dict[str, str]) -> None:
    client.tag_resource(aws_retry=True, resourceArn=arn, tags=[{"key": k, "value": v} for k, v in sorted(tags.items())])


@EcsErrorHandler.common_error_handler("untag cluster")
def untag_cluster(client, arn: str, keys: List[str]) -> None:
    client.untag_resource(aws_retry=True, resourceArn=arn, tagKeys=keys)


def converge_tags(module, client, cluster: Dict[str, Any], result: Dict[str, Any]) -> None:
    """The cluster's tags as asked (added and changed; others removed with purge_tags)."""
    have = {t["key"]: t["value"] for t in cluster.get("tags") or [] if "key" in t}
    wanted = {str(k): str(v) for k, v in module.params["tags"].items()}
    to_set = {k: v for k, v in wanted.items() if have.get(k) != v}
    to_remove = sorted(set(have) - set(wanted)) if module.params["purge_tags"] else []
    after = {k: v for k, v in dict(have, **wanted).items() if k not in to_remove}
    result["tags"] = after
    result["diff"]["before"]["tags"], result["diff"]["after"]["tags"] = have, after
    if not (to_set or to_remove):
        return
    result["changed"] = True
    if module.check_mode:
        return
    arn = cluster.get("clusterArn") or module.params["cluster"]
    if to_set:
        tag_cluster(client, arn, to_set)
    if to_remove:
        untag_cluster(client, arn, to_remove)


def converge(module, client) -> Dict[str, Any]:
    name, wanted = module.params["cluster"], module.params["container_insights"]
    cluster = describe_cluster(client, name, tags=module.params["tags"] is not None)
    if not cluster:
        module.fail_json(msg=f"The ECS cluster {name} does not exist or is not ACTIVE: create it first.")
    before = settings_of(cluster)
    after = dict(before, **{SETTING: wanted})
    result = {"changed": before != after, "settings": after, "cluster_arn": cluster.get("clusterArn", "")}
    result["diff"] = {"before": dict(before), "after": dict(after)}
    if result["changed"] and not module.check_mode:
        updated = update_settings(client, cluster.get("clusterArn") or name, wanted).get("cluster")
        if updated:
            result["settings"] = dict(after, **settings_of(updated))
    if module.params["tags"] is not None:
        converge_tags(module, client, cluster, result)
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            container_insights=dict(type="str", choices=["enabled", "enhanced", "disabled"], required=True),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not module.params["cluster"].strip():
        module.fail_json(msg="cluster must name an ECS cluster. No AWS call was made.")
    client = module.client("ecs", retry_decorator=ECS_RETRY)
    try:
        result = converge(module, client)
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
