#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: tagged_resources_info
version_added: 0.1.0
short_description: List the AWS resources that carry a given set of tags
description:
  - Lists every resource in the region that carries all of O(tags) (same keys, same values), for
    example to prove at the end of a teardown that nothing tagged for an environment is left, to
    check that a run in check mode created nothing, or to audit what an environment is made of.
  - Most resources are found with the Resource Groups Tagging API (C(tag:GetResources)), which
    covers the services of the region the module runs in.
  - That API does not list IAM roles (IAM is global and not part of it). With O(include_iam=true)
    the module also lists, through IAM itself, the roles, customer managed policies and instance
    profiles that carry O(tags).
  - The tagging API also lists resources that are already gone or on their way out, and for a while
    it still lists resources that were just deleted. With O(exclude_gone=true) the module asks the
    owning service about the resource types below, and leaves out those the service no longer knows
    (state V(NotFound)) and those in one of the states listed, which count as gone.
  - "V(acm:certificate): none, only V(NotFound)."
  - "V(ec2:instance): V(shutting-down), V(terminated)."
  - "V(ec2:natgateway): V(deleting), V(deleted)."
  - "V(ec2:vpc-endpoint): V(deleting), V(deleted)."
  - "V(ecs:cluster): V(DEPROVISIONING), V(INACTIVE)."
  - "V(ecs:service): V(DRAINING), V(INACTIVE)."
  - "V(ecs:task): V(DEACTIVATING), V(STOPPING), V(DEPROVISIONING), V(STOPPED), V(DELETED) (the last status)."
  - "V(ecs:task-definition): V(INACTIVE), V(DELETE_IN_PROGRESS)."
  - "V(kms:key): V(PendingDeletion), V(PendingReplicaDeletion)."
  - "V(rds:cluster): V(deleting)."
  - "V(rds:db): V(deleting)."
  - "V(secretsmanager:secret): V(PendingDeletion), that is the secret has a C(DeletedDate)."
  - Every other state of those types, and every resource of any other type, counts as left.
    In particular a disabled KMS key, a stopped RDS instance, an expired certificate and a manual
    RDS snapshot are left, as each still exists and has to be deleted.
  - The module never changes anything.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  tags:
    description:
      - The tags to look for. A resource is listed when it has every one of these keys, each with
        exactly the value given (tag keys and values are case-sensitive). Other tags do not matter.
      - Values are compared as strings; quote values such as V("true") or V("01").
      - At least one and at most 50 tags.
    required: true
    type: dict
  resource_types:
    description:
      - Only list resources of these types, given as the tagging API's C(ResourceTypeFilters),
        either a service (V(ec2)) or a service and a type (V(ec2:vpc), V(ecs:cluster),
        V(logs:log-group), V(elasticloadbalancing:targetgroup)).
      - V(iam), V(iam:role), V(iam:policy) and V(iam:instance-profile) select the IAM resources that
        O(include_iam) lists; they are not sent to the tagging API.
      - By default every type is listed.
    type: list
    elements: str
  include_iam:
    description:
      - Also list the IAM roles, customer managed policies and instance profiles that carry O(tags).
      - IAM is global, so these are listed whatever the region is.
      - This reads the tags of every role, policy and instance profile under O(iam_path_prefix), one
        call each.
    type: bool
    default: true
  iam_path_prefix:
    description:
      - Only look at IAM roles, policies and instance profiles whose path starts with this prefix,
        for example V(/myapp/).
    type: str
    default: /
  exclude_gone:
    description:
      - Leave out resources that are already gone or on their way out, as the description lists,
        and return them in RV(excluded) instead.
      - This asks each owning service about the resources of the types listed in the description,
        so it needs the C(Describe*) permissions named in the notes. When such a call is denied the
        resources it was about are counted as left, with a warning.
      - With V(false) every resource the tagging API lists is returned, and no state is looked up.
    type: bool
    default: true
notes:
  - The tagging API only sees the region the module runs in. Resources of global services that it
    covers, such as Route 53 hosted zones and CloudFront distributions, are listed in V(us-east-1).
  - Some resources cannot be found by tags at all. Route 53 records, KMS aliases, IAM policy
    attachments and security group rules have no tags of their own; resources created without the
    tags (for example the untagged instance profile M(amazon.aws.iam_role) creates by default) are
    not found either.
  - The tagging API is eventually consistent, so a resource tagged, untagged or created a moment ago
    may be missing or still listed; run the module again after a short wait before relying on an
    empty result.
  - Needed permissions are C(tag:GetResources); with O(include_iam=true) C(iam:ListRoles),
    C(iam:ListRoleTags), C(iam:ListPolicies), C(iam:ListPolicyTags), C(iam:ListInstanceProfiles) and
    C(iam:GetInstanceProfile); with O(exclude_gone=true), for the types listed, C(acm:DescribeCertificate),
    C(ec2:DescribeInstances), C(ec2:DescribeNatGateways), C(ec2:DescribeVpcEndpoints),
    C(ecs:DescribeClusters), C(ecs:DescribeServices), C(ecs:DescribeTasks),
    C(ecs:DescribeTaskDefinition), C(kms:DescribeKey), C(rds:DescribeDBClusters),
    C(rds:DescribeDBInstances) and C(secretsmanager:DescribeSecret).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: List what is left of the environment
  ecs_production.platform.tagged_resources_info:
    tags:
      Project: myapp
      Environment: prod
      ManagedBy: ansible
  register: leftovers

- name: Prove the teardown left nothing behind, naming what it left if it did
  ansible.builtin.assert:
    that: leftovers.count == 0
    fail_msg: "{{ leftovers.count }} tagged resources are left: {{ leftovers.resources | map(attribute='arn') | list }}"
    quiet: true

- name: Only the ECS and load balancing resources
  ecs_production.platform.tagged_resources_info:
    tags:
      Environment: prod
    resource_types:
      - ecs
      - elasticloadbalancing:loadbalancer
    include_iam: false
  register: ecs_and_lb

- name: Everything the tagging API lists, including what is being deleted
  ecs_production.platform.tagged_resources_info:
    tags:
      Environment: prod
    exclude_gone: false
"""

RETURN = r"""
resources:
  description: The resources that carry the tags and are left, sorted by ARN.
  returned: always
  type: list
  elements: dict
  contains:
    arn:
      description: ARN of the resource.
      returned: always
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:cluster/myapp-prod
    service:
      description: The service namespace of the ARN.
      returned: always
      type: str
      sample: ecs
    resource_type:
      description:
        - The type as the tagging API's C(ResourceTypeFilters) names it, C(service:type), read from the ARN.
        - Just the service when the ARN names no type.
      returned: always
      type: str
      sample: ecs:cluster
    resource_id:
      description: The part of the ARN after the type, such as a name or an ID.
      returned: always
      type: str
      sample: myapp-prod
    region:
      description: The region of the ARN; empty for global resources such as IAM roles and S3 buckets.
      returned: always
      type: str
      sample: us-east-1
    tags:
      description: All the tags of the resource.
      returned: always
      type: dict
      sample: {"Project": "myapp", "Environment": "prod", "ManagedBy": "ansible"}
    state:
      description:
        - The state the owning service reports, or V(NotFound) when it no longer knows the resource.
        - For a Secrets Manager secret, V(PendingDeletion) or V(Active).
      returned: with O(exclude_gone=true), for the types the description lists, when the service could be asked
      type: str
      sample: ACTIVE
count:
  description: The number of resources in RV(resources).
  returned: always
  type: int
  sample: 3
by_service:
  description: The number of resources in RV(resources) for each service.
  returned: always
  type: dict
  sample: {"ec2": 2, "iam": 1}
excluded:
  description:
    - The resources that carry the tags but are gone or on their way out, with their RV(resources[].state),
      sorted by ARN; same fields as RV(resources).
  returned: when O(exclude_gone=true)
  type: list
  elements: dict
  sample:
    - arn: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
      service: kms
      resource_type: kms:key
      resource_id: 1234abcd-12ab-34cd-56ef-1234567890ab
      region: us-east-1
      tags: {"Environment": "prod"}
      state: PendingDeletion
"""

from collections import Counter
from collections import namedtuple
from typing import Any
from typing import Callable
from typing import Dict
from typing import Iterator
from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_message
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

NOT_FOUND = "NotFound"
MAX_TAGS = 50
RESOURCES_PER_PAGE = 100
# Services whose ARNs name the resource without a type (arn:aws:sqs:us-east-1:123456789012:my-queue).
UNTYPED_ARN_SERVICES = {"s3": "bucket", "sns": "topic", "sqs": "queue"}
ACCESS_DENIED_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")


# ---- ARNs and tags ---------------------------------------------------------------------------


def parse_arn(arn: str) -> Dict[str, str]:
    """service, resource_type (as ResourceTypeFilters names it), resource_id and region of an ARN."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return {"service": "", "resource_type": "", "resource_id": arn, "region": ""}
    service, region, resource = parts[2], parts[3], parts[5]
    resource = resource.lstrip("/")  # API Gateway: arn:aws:apigateway:us-east-1::/restapis/a1b2c3
    cuts = [index for index in (resource.find("/"), resource.find(":")) if index > 0]
    if service in UNTYPED_ARN_SERVICES and "/" not in resource:
        type_name, resource_id = UNTYPED_ARN_SERVICES[service], resource
    elif cuts:
        cut = min(cuts)
        type_name, resource_id = resource[:cut], resource[cut + 1 :]
    else:
        type_name, resource_id = "", resource
    resource_type = f"{service}:{type_name}" if type_name else service
    return {"service": service, "resource_type": resource_type, "resource_id": resource_id, "region": region}


def normalize_tags(tags: Dict[str, Any]) -> Dict[str, str]:
    """The wanted tags with values as strings, as AWS stores them."""
    return {str(key): "" if value is None else str(value) for key, value in tags.items()}


def tags_match(tags: Dict[str, str], wanted: Dict[str, str]) -> bool:
    """Whether ``tags`` holds every wanted key with exactly the wanted value."""
    return all(key in tags and tags[key] == value for key, value in wanted.items())


def tag_filters(wanted: Dict[str, str]) -> List[Dict[str, Any]]:
    """GetResources TagFilters: one filter per key, all of which must match."""
    return [{"Key": key, "Values": [value]} for key, value in sorted(wanted.items())]


def to_resource(arn: str, tags: Dict[str, str]) -> Dict[str, Any]:
    resource: Dict[str, Any] = {"arn": arn}
    resource.update(parse_arn(arn))
    resource["tags"] = tags
    return resource


def type_selected(resource_type: str, resource_types: Optional[Sequence[str]]) -> bool:
    """ResourceTypeFilters semantics: no filter selects all; a service selects all of its types."""
    if not resource_types:
        return True
    return resource_type in resource_types or resource_type.split(":", 1)[0] in resource_types


def split_type_filters(resource_types: Optional[Sequence[str]], include_iam: bool) -> Optional[List[str]]:
    """The ResourceTypeFilters for the tagging API, or None when it has nothing to be asked for.

    With include_iam the IAM types are listed through IAM, so they are kept out of the tagging API's filters;
    when only IAM types were asked for, the tagging API is not asked at all (no filter would mean every type).
    """
    if not resource_types:
        return []
    if not include_iam:
        return list(resource_types)
    others = [item for item in resource_types if item.split(":", 1)[0] != "iam"]
    return others or None


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def error_code(error: AnsibleAWSError) -> str:
    response = getattr(error.exception, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


# ---- the tagging API -------------------------------------------------------------------------


@AWSErrorHandler.common_error_handler("list tagged resources")
def get_tagged_resources(client, filters: List[Dict[str, Any]], type_filters: List[str]) -> List[Dict[str, Any]]:
    """Every page of GetResources. A page may be empty and still carry a PaginationToken."""
    params: Dict[str, Any] = {"TagFilters": filters, "ResourcesPerPage": RESOURCES_PER_PAGE}
    if type_filters:
        params["ResourceTypeFilters"] = type_filters
    mappings: List[Dict[str, Any]] = []
    while True:
        page = client.get_resources(aws_retry=True, **params)
        mappings.extend(page.get("ResourceTagMappingList", []))
        token = page.get("PaginationToken")
        if not token:
            return mappings
        params["PaginationToken"] = token


# ---- IAM ---------------------------------------------------------------------------------------


def _iam_pages(operation: Callable[..., Dict[str, Any]], key: str, **params: Any) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = []
    while True:
        page = operation(aws_retry=True, **params)
        items.extend(page.get(key, []))
        if not page.get("IsTruncated"):
            return items
        params["Marker"] = page["Marker"]


class IAMErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NoSuchEntity")


@IAMErrorHandler.common_error_handler("list IAM roles")
def list_iam_roles(client, path_prefix: str) -> List[Dict[str, Any]]:
    return _iam_pages(client.list_roles, "Roles", PathPrefix=path_prefix)


@IAMErrorHandler.common_error_handler("list IAM customer managed policies")
def list_iam_policies(client, path_prefix: str) -> List[Dict[str, Any]]:
    return _iam_pages(client.list_policies, "Policies", Scope="Local", PathPrefix=path_prefix)


@IAMErrorHandler.common_error_handler("list IAM instance profiles")
def list_iam_instance_profiles(client, path_prefix: str) -> List[Dict[str, Any]]:
    return _iam_pages(client.list_instance_profiles, "InstanceProfiles", PathPrefix=path_prefix)


@IAMErrorHandler.list_error_handler("list IAM role tags")
def iam_role_tags(client, name: str) -> Optional[Dict[str, str]]:
    """The role's tags; None when it was deleted since it was listed."""
    return boto3_tag_list_to_ansible_dict(_iam_pages(client.list_role_tags, "Tags", RoleName=name))


@IAMErrorHandler.list_error_handler("list IAM policy tags")
def iam_policy_tags(client, arn: str) -> Optional[Dict[str, str]]:
    return boto3_tag_list_to_ansible_dict(_iam_pages(client.list_policy_tags, "Tags", PolicyArn=arn))


@IAMErrorHandler.list_error_handler("get IAM instance profile")
def iam_instance_profile_tags(client, name: str) -> Optional[Dict[str, str]]:
    # GetInstanceProfile returns the tags (ListInstanceProfiles does not).
    profile = client.get_instance_profile(aws_retry=True, InstanceProfileName=name)["InstanceProfile"]
    return boto3_tag_list_to_ansible_dict(profile.get("Tags", []))


def iam_resources(
    client, wanted: Dict[str, str], path_prefix: str, resource_types: Optional[Sequence[str]]
) -> List[Dict[str, Any]]:
    """The IAM roles, customer managed policies and instance profiles carrying the wanted tags."""
    kinds = (
        ("iam:role", list_iam_roles, lambda item: iam_role_tags(client, item["RoleName"])),
        ("iam:policy", list_iam_policies, lambda item: iam_policy_tags(client, item["Arn"])),
        (
            "iam:instance-profile",
            list_iam_instance_profiles,
            lambda item: iam_instance_profile_tags(client, item["InstanceProfileName"]),
        ),
    )
    found = []
    for resource_type, list_items, read_tags in kinds:
        if not type_selected(resource_type, resource_types):
            continue
        for item in list_items(client, path_prefix):
            tags = read_tags(item)
            if tags is not None and tags_match(tags, wanted):
                found.append(to_resource(item["Arn"], tags))
    return found


# ---- states of resources on their way out ----------------------------------------------------
# Each lookup takes a client and resources of one type and returns {arn: state} for those it could
# tell; NOT_FOUND when the service no longer knows the resource.


@AWSErrorHandler.common_error_handler("describe KMS keys")
def kms_key_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            states[resource["arn"]] = client.describe_key(aws_retry=True, KeyId=resource["arn"])["KeyMetadata"][
                "KeyState"
            ]
        except is_boto3_error_code("NotFoundException"):
            states[resource["arn"]] = NOT_FOUND
    return states


@AWSErrorHandler.common_error_handler("describe RDS DB instances")
def rds_instance_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_db_instances(aws_retry=True, DBInstanceIdentifier=resource["resource_id"])
            states[resource["arn"]] = found["DBInstances"][0]["DBInstanceStatus"]
        except is_boto3_error_code("DBInstanceNotFound"):
            states[resource["arn"]] = NOT_FOUND
    return states


@AWSErrorHandler.common_error_handler("describe RDS DB clusters")
def rds_cluster_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_db_clusters(aws_retry=True, DBClusterIdentifier=resource["resource_id"])
            states[resource["arn"]] = found["DBClusters"][0]["Status"]
        except is_boto3_error_code("DBClusterNotFoundFault"):
            states[resource["arn"]] = NOT_FOUND
    return states


def _ecs_answers(found: List[Dict[str, Any]], arn_key: str, state_key: str, failures: List[Dict[str, Any]]):
    states = {item[arn_key]: item[state_key] for item in found}
    states.update({failure["arn"]: NOT_FOUND for failure in failures if failure.get("reason") == "MISSING"})
    return states


@AWSErrorHandler.common_error_handler("describe ECS clusters")
def ecs_cluster_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for batch in chunks([resource["arn"] for resource in resources], 100):
        answer = client.describe_clusters(aws_retry=True, clusters=list(batch))
        states.update(_ecs_answers(answer.get("clusters", []), "clusterArn", "status", answer.get("failures", [])))
    return states


def _by_ecs_cluster(resources: List[Dict[str, Any]]) -> Dict[str, List[str]]:
    """ARNs of services or tasks by cluster name, from the long ARN format (service/CLUSTER/NAME).

    A short-format ARN (service/NAME) does not tell its cluster; its state stays unknown.
    """
    clusters: Dict[str, List[str]] = {}
    for resource in resources:
        cluster, sep, _name = resource["resource_id"].partition("/")
        if sep:
            clusters.setdefault(cluster, []).append(resource["arn"])
    return clusters


def _ecs_cluster_members(resources, operation, *, batch_size, key, arn_key, state_key) -> Dict[str, str]:
    states = {}
    for cluster, arns in sorted(_by_ecs_cluster(resources).items()):
        for batch in chunks(arns, batch_size):
            try:
                answer = operation(aws_retry=True, cluster=cluster, **{key: list(batch)})
            except is_boto3_error_code("ClusterNotFoundException"):
                states.update(dict.fromkeys(batch, NOT_FOUND))
                continue
            states.update(_ecs_answers(answer.get(key, []), arn_key, state_key, answer.get("failures", [])))
    return states


@AWSErrorHandler.common_error_handler("describe ECS services")
def ecs_service_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    return _ecs_cluster_members(
        resources, client.describe_services, batch_size=10, key="services", arn_key="serviceArn", state_key="status"
    )


@AWSErrorHandler.common_error_handler("describe ECS tasks")
def ecs_task_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    return _ecs_cluster_members(
        resources, client.describe_tasks, batch_size=100, key="tasks", arn_key="taskArn", state_key="lastStatus"
    )


@AWSErrorHandler.common_error_handler("describe ECS task definitions")
def ecs_task_definition_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_task_definition(aws_retry=True, taskDefinition=resource["arn"])
            states[resource["arn"]] = found["taskDefinition"]["status"]
        except is_boto3_error_message("Unable to describe task definition"):
            states[resource["arn"]] = NOT_FOUND
    return states


def _ec2_states(resources, operation, *, filter_name, items_of, id_key, state_of) -> Dict[str, str]:
    """Describe by an ID filter, in batches: unlike a list of IDs, a filter does not fail on an ID that is gone."""
    arns = {resource["resource_id"]: resource["arn"] for resource in resources}
    states = {}
    for batch in chunks(sorted(arns), 100):
        found = {}
        params: Dict[str, Any] = {"Filters": [{"Name": filter_name, "Values": list(batch)}]}
        while True:
            page = operation(aws_retry=True, **params)
            found.update({item[id_key]: state_of(item) for item in items_of(page)})
            if not page.get("NextToken"):
                break
            params["NextToken"] = page["NextToken"]
        states.update({arns[item_id]: found.get(item_id, NOT_FOUND) for item_id in batch})
    return states


def _instances(page: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [instance for reservation in page.get("Reservations", []) for instance in reservation.get("Instances", [])]


@AWSErrorHandler.common_error_handler("describe EC2 instances")
def ec2_instance_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    return _ec2_states(
        resources,
        client.describe_instances,
        filter_name="instance-id",
        items_of=_instances,
        id_key="InstanceId",
        state_of=lambda item: item["State"]["Name"],
    )


@AWSErrorHandler.common_error_handler("describe NAT gateways")
def ec2_nat_gateway_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    return _ec2_states(
        resources,
        client.describe_nat_gateways,
        filter_name="nat-gateway-id",
        items_of=lambda page: page.get("NatGateways", []),
        id_key="NatGatewayId",
        state_of=lambda item: item["State"],
    )


@AWSErrorHandler.common_error_handler("describe VPC endpoints")
def ec2_vpc_endpoint_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_vpc_endpoints(aws_retry=True, VpcEndpointIds=[resource["resource_id"]])
            endpoints = found.get("VpcEndpoints", [])
            states[resource["arn"]] = endpoints[0]["State"] if endpoints else NOT_FOUND
        except is_boto3_error_code("InvalidVpcEndpointId.NotFound"):
            states[resource["arn"]] = NOT_FOUND
    return states


@AWSErrorHandler.common_error_handler("describe ACM certificates")
def acm_certificate_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_certificate(aws_retry=True, CertificateArn=resource["arn"])
            states[resource["arn"]] = found["Certificate"]["Status"]
        except is_boto3_error_code("ResourceNotFoundException"):
            states[resource["arn"]] = NOT_FOUND
    return states


@AWSErrorHandler.common_error_handler("describe Secrets Manager secrets")
def secret_states(client, resources: List[Dict[str, Any]]) -> Dict[str, str]:
    states = {}
    for resource in resources:
        try:
            found = client.describe_secret(aws_retry=True, SecretId=resource["arn"])
            states[resource["arn"]] = "PendingDeletion" if found.get("DeletedDate") else "Active"
        except is_boto3_error_code("ResourceNotFoundException"):
            states[resource["arn"]] = NOT_FOUND
    return states


StateCheck = namedtuple("StateCheck", ["client", "lookup", "gone_states"])

# The types whose state is looked up, the client that does it and the states that count as gone.
# Keep DOCUMENTATION's list in step with this one.
STATE_CHECKS: Dict[str, StateCheck] = {
    "acm:certificate": StateCheck("acm", acm_certificate_states, ()),
    "ec2:instance": StateCheck("ec2", ec2_instance_states, ("shutting-down", "terminated")),
    "ec2:natgateway": StateCheck("ec2", ec2_nat_gateway_states, ("deleting", "deleted")),
    "ec2:vpc-endpoint": StateCheck("ec2", ec2_vpc_endpoint_states, ("deleting", "deleted")),
    "ecs:cluster": StateCheck("ecs", ecs_cluster_states, ("DEPROVISIONING", "INACTIVE")),
    "ecs:service": StateCheck("ecs", ecs_service_states, ("DRAINING", "INACTIVE")),
    "ecs:task": StateCheck(
        "ecs", ecs_task_states, ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED")
    ),
    "ecs:task-definition": StateCheck("ecs", ecs_task_definition_states, ("INACTIVE", "DELETE_IN_PROGRESS")),
    "kms:key": StateCheck("kms", kms_key_states, ("PendingDeletion", "PendingReplicaDeletion")),
    "rds:cluster": StateCheck("rds", rds_cluster_states, ("deleting",)),
    "rds:db": StateCheck("rds", rds_instance_states, ("deleting",)),
    "secretsmanager:secret": StateCheck("secretsmanager", secret_states, ("PendingDeletion",)),
}


def is_gone(resource: Dict[str, Any], checks: Dict[str, StateCheck]) -> bool:
    state = resource.get("state")
    if state is None:
        return False
    if state == NOT_FOUND:
        return True
    gone = {item.lower() for item in checks[resource["resource_type"]].gone_states}
    return state.lower() in gone


def look_up_states(
    module: AnsibleAWSModule,
    resources: List[Dict[str, Any]],
    client_for: Callable[[str], Any],
    checks: Dict[str, StateCheck],
) -> None:
    """Set ``state`` on each resource of a checked type whose service could tell."""
    by_type: Dict[str, List[Dict[str, Any]]] = {}
    for resource in resources:
        if resource["resource_type"] in checks:
            by_type.setdefault(resource["resource_type"], []).append(resource)
    for resource_type, members in sorted(by_type.items()):
        check = checks[resource_type]
        try:
            states = check.lookup(client_for(check.client), members)
        except AnsibleAWSError as e:
            if error_code(e) not in ACCESS_DENIED_CODES:
                raise
            module.warn(
                f"Could not tell whether {len(members)} {resource_type} resources are gone ({e.message}:"
                f" {error_code(e)}); they are counted as left."
            )
            continue
        for resource in members:
            if resource["arn"] in states:
                resource["state"] = states[resource["arn"]]


def split_gone(
    resources: List[Dict[str, Any]], checks: Dict[str, StateCheck]
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    left = [resource for resource in resources if not is_gone(resource, checks)]
    gone = [resource for resource in resources if is_gone(resource, checks)]
    return left, gone


# ---- the module --------------------------------------------------------------------------------


def find_resources(module: AnsibleAWSModule, client_for: Callable[[str], Any]) -> Dict[str, Dict[str, Any]]:
    """Every resource carrying the wanted tags, by ARN, from the tagging API and (optionally) IAM."""
    params = module.params
    wanted = normalize_tags(params["tags"])
    found: Dict[str, Dict[str, Any]] = {}
    type_filters = split_type_filters(params["resource_types"], params["include_iam"])
    if type_filters is not None:
        for mapping in get_tagged_resources(client_for("resourcegroupstaggingapi"), tag_filters(wanted), type_filters):
            tags = boto3_tag_list_to_ansible_dict(mapping.get("Tags", []))
            # The API filters already; this guards against any looser matching.
            if tags_match(tags, wanted):
                found[mapping["ResourceARN"]] = to_resource(mapping["ResourceARN"], tags)
    if params["include_iam"]:
        for resource in iam_resources(client_for("iam"), wanted, params["iam_path_prefix"], params["resource_types"]):
            found[resource["arn"]] = resource
    return found


def summarize(resources: List[Dict[str, Any]]) -> Dict[str, Any]:
    ordered = sorted(resources, key=lambda resource: resource["arn"])
    return {
        "resources": ordered,
        "count": len(ordered),
        "by_service": dict(sorted(Counter(resource["service"] for resource in ordered).items())),
    }


def validate(module: AnsibleAWSModule) -> None:
    tags = module.params["tags"]
    if not tags:
        module.fail_json(msg="tags must name at least one tag: without any, every tagged resource would match.")
    if len(tags) > MAX_TAGS:
        module.fail_json(msg=f"tags may name at most {MAX_TAGS} tags, not {len(tags)}.")
    if any(not str(key) for key in tags):
        module.fail_json(msg="tags may not have an empty key.")


def main() -> None:
    argument_spec = dict(
        tags=dict(type="dict", required=True),
        resource_types=dict(type="list", elements="str"),
        include_iam=dict(type="bool", default=True),
        iam_path_prefix=dict(type="str", default="/"),
        exclude_gone=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)

    clients: Dict[str, Any] = {}
    retry_codes = {"resourcegroupstaggingapi": ["ThrottledException"]}

    def client_for(service: str):
        if service not in clients:
            retry = AWSRetry.jittered_backoff(catch_extra_error_codes=retry_codes.get(service, []))
            clients[service] = module.client(service, retry_decorator=retry)
        return clients[service]

    try:
        resources = list(find_resources(module, client_for).values())
        result: Dict[str, Any] = {"changed": False}
        if module.params["exclude_gone"]:
            look_up_states(module, resources, client_for, STATE_CHECKS)
            resources, gone = split_gone(resources, STATE_CHECKS)
            result["excluded"] = sorted(gone, key=lambda resource: resource["arn"])
        result.update(summarize(resources))
    except AnsibleAWSError as e:
        module.fail_json_aws_error(e)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
