#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: ecs_cluster_settings
version_added: 0.1.0
short_description: The settings of an ECS cluster (Container Insights), written only when they differ
description:
  - Sets the C(containerInsights) setting of an existing ECS cluster.
  - Reads the cluster with one C(DescribeClusters) call (with its settings) and calls C(UpdateCluster) only when
    the setting differs.
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
notes:
  - Supports check mode and diff mode (the settings before and after).
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Container Insights on the cluster
  ecs_production.platform.ecs_cluster_settings:
    cluster: prod
    container_insights: enabled

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
cluster_arn:
  description: The cluster's ARN.
  returned: always
  type: str
  sample: arn:aws:ecs:us-east-1:123456789012:cluster/prod
"""

from typing import Any, Dict

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

ECS_RETRY = AWSRetry.jittered_backoff(retries=10)
SETTING = "containerInsights"


class EcsErrorHandler(AWSErrorHandler):
    pass


@EcsErrorHandler.common_error_handler("describe cluster")
def describe_cluster(client, cluster: str) -> Dict[str, Any]:
    """The ACTIVE cluster as DescribeClusters returns it with its settings, {} when there is none."""
    found = client.describe_clusters(aws_retry=True, clusters=[cluster], include=["SETTINGS"])
    return next((c for c in found.get("clusters", []) if c.get("status") == "ACTIVE"), {})


@EcsErrorHandler.common_error_handler("update cluster settings")
def update_settings(client, cluster: str, value: str) -> Dict[str, Any]:
    return client.update_cluster(aws_retry=True, cluster=cluster, settings=[{"name": SETTING, "value": value}])


def settings_of(cluster: Dict[str, Any]) -> Dict[str, str]:
    """The cluster's settings as a dict. A cluster that never had the setting has it disabled."""
    settings = {s["name"]: s["value"] for s in cluster.get("settings") or [] if "name" in s}
    settings.setdefault(SETTING, "disabled")
    return settings


def converge(module, client) -> Dict[str, Any]:
    name, wanted = module.params["cluster"], module.params["container_insights"]
    cluster = describe_cluster(client, name)
    if not cluster:
        module.fail_json(msg=f"The ECS cluster {name} does not exist or is not ACTIVE: create it first.")
    before = settings_of(cluster)
    after = dict(before, **{SETTING: wanted})
    result = {"changed": before != after, "settings": after, "cluster_arn": cluster.get("clusterArn", "")}
    result["diff"] = {"before": before, "after": after}
    if result["changed"] and not module.check_mode:
        updated = update_settings(client, cluster.get("clusterArn") or name, wanted).get("cluster")
        if updated:
            result["settings"] = dict(after, **settings_of(updated))
    return result


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            container_insights=dict(type="str", choices=["enabled", "enhanced", "disabled"], required=True),
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
