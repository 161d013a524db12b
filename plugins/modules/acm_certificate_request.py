#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: acm_certificate_request
version_added: 0.1.0
short_description: Request a DNS-validated ACM certificate and write its validation records to Route 53
description:
  - Requests a public certificate from AWS Certificate Manager (ACM) with DNS validation, writes the
    validation C(CNAME) records into a public Route 53 hosted zone and, by default, waits until ACM has issued it.
  - The C(Name) tag in O(tags) identifies the certificate. A later run looks for a certificate carrying the same
    C(Name) tag, O(domain_name), O(subject_alternative_names) and O(key_algorithm), and reuses it instead of
    requesting a new one. Use one C(Name) per certificate, for example one per environment.
  - Certificates in the states C(FAILED), C(VALIDATION_TIMED_OUT), C(REVOKED), C(EXPIRED) and C(INACTIVE) are
    ignored by O(state=present); a new certificate is requested in their place.
  - ACM cannot change the names or the key algorithm of a certificate. When O(domain_name),
    O(subject_alternative_names) or O(key_algorithm) change, a new certificate is requested with the same C(Name)
    tag. The certificate it supersedes is deleted, with the validation records no other certificate needs, as soon
    as nothing uses it any more. While a listener or distribution still uses it, it is left in place with a
    warning and listed in RV(superseded_certificate_arns); point its users at RV(certificate_arn) and run the
    module again.
  - M(community.aws.acm_certificate) can only import certificates; this module requests them.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  state:
    description:
      - V(present) requests the certificate if needed, writes its validation records and syncs its tags.
      - V(absent) deletes every certificate carrying the C(Name) tag of O(tags) (only those for O(domain_name)
        when it is given), then removes their validation records from the zone, except records another
        certificate in the account still needs for validation or renewal.
    type: str
    choices: [present, absent]
    default: present
  domain_name:
    description:
      - The fully qualified domain name the certificate is for, for example V(app.example.com) or
        V(*.example.com). At most 64 characters, as ACM requires for the first name of a certificate.
      - Required when O(state=present).
    type: str
  subject_alternative_names:
    description:
      - Further names the certificate covers. O(domain_name) is always covered and need not be repeated.
      - Every name must lie inside the hosted zone, because its validation record is written there.
    type: list
    elements: str
    default: []
  hosted_zone_id:
    description:
      - ID of the public Route 53 hosted zone the validation records are written to.
      - Exactly one of O(hosted_zone_id) and O(hosted_zone_name) is required.
    type: str
  hosted_zone_name:
    description:
      - Name of the public Route 53 hosted zone the validation records are written to, for example V(example.com).
      - Private zones with that name are ignored; ACM validates through public DNS.
    type: str
  key_algorithm:
    description:
      - Algorithm of the certificate's key pair.
    type: str
    choices: [RSA_2048, EC_prime256v1, EC_secp384r1]
    default: RSA_2048
  validation_record_ttl:
    description:
      - TTL in seconds of the validation C(CNAME) records.
    type: int
    default: 300
  wait:
    description:
      - With O(state=present), wait until ACM has issued the certificate; fail if validation fails or times out.
      - With O(state=absent), keep retrying the deletion of a certificate that is still in use (ACM reports a
        certificate as in use for some minutes after its last user let go of it).
      - The module always waits for ACM to publish the validation records, since they have to be written to the zone.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait in total, see O(wait). Waiting for the validation records to be published takes
        at least 60 seconds before giving up, even with a smaller value.
    type: int
    default: 600
  tags:
    description:
      - Tags of the certificate. Must contain a non-empty C(Name) tag, which identifies the certificate on later
        runs (see the description above).
      - With O(state=absent) only the C(Name) tag is used, to find the certificates to delete.
    type: dict
    required: true
    aliases: ['resource_tags']
  purge_tags:
    description:
      - Remove tags of the certificate that are not in O(tags). Tag keys beginning with V(aws:) are never removed.
    type: bool
    default: true
notes:
  - Requires the IAM permissions C(acm:ListCertificates), C(acm:DescribeCertificate), C(acm:ListTagsForCertificate),
    C(acm:RequestCertificate), C(acm:AddTagsToCertificate), C(acm:RemoveTagsFromCertificate), C(acm:DeleteCertificate),
    C(route53:GetHostedZone), C(route53:ListHostedZonesByName), C(route53:ListResourceRecordSets) and
    C(route53:ChangeResourceRecordSets).
  - A certificate for an Application Load Balancer must be requested in the load balancer's region
    (for CloudFront, in C(us-east-1)).
  - Validation records are written with C(UPSERT) and only when they are not already exactly present. ACM derives a
    domain's validation record from the domain and the account, so certificates for the same name share it.
  - Supports check mode (no write calls are made, nothing is waited for) and diff mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Request the environment's certificate and wait until it is issued
  ecs_production.platform.acm_certificate_request:
    domain_name: app.example.com
    subject_alternative_names:
      - www.example.com
    hosted_zone_name: example.com
    tags:
      Name: platform-prod
      Environment: prod
  register: certificate

- name: Serve HTTPS with it
  amazon.aws.elb_application_lb:
    name: platform-prod
    subnets: "{{ public_subnet_ids }}"
    security_groups: ["{{ alb_security_group_id }}"]
    listeners:
      - Protocol: HTTPS
        Port: 443
        Certificates:
          - CertificateArn: "{{ certificate.certificate_arn }}"
        DefaultActions:
          - Type: forward
            TargetGroupName: platform-prod-blue

- name: Request without waiting (the validation records are still written)
  ecs_production.platform.acm_certificate_request:
    domain_name: "*.staging.example.com"
    hosted_zone_id: Z0123456789ABCDEFGHIJ
    key_algorithm: EC_prime256v1
    wait: false
    tags:
      Name: platform-staging

- name: Delete the environment's certificate and its validation records
  ecs_production.platform.acm_certificate_request:
    state: absent
    hosted_zone_name: example.com
    wait_timeout: 900
    tags:
      Name: platform-prod
"""

RETURN = r"""
certificate_arn:
  description: ARN of the certificate. V(null) in check mode when the certificate would be requested.
  returned: when O(state=present)
  type: str
  sample: arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012
domain_name:
  description: The certificate's primary domain name.
  returned: when O(state=present)
  type: str
  sample: app.example.com
subject_alternative_names:
  description: All names the certificate covers, O(domain_name) included.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [app.example.com, www.example.com]
key_algorithm:
  description: Algorithm of the certificate's key pair.
  returned: when O(state=present)
  type: str
  sample: RSA_2048
status:
  description: ACM status of the certificate. V(null) in check mode when the certificate would be requested.
  returned: when O(state=present)
  type: str
  sample: ISSUED
validation_records:
  description: The DNS validation records of the certificate, as written to the hosted zone.
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    name:
      description: Record name.
      type: str
      sample: _3b7e1c6b2f0a9d8e7c6b5a4f3e2d1c0b.app.example.com.
    type:
      description: Record type.
      type: str
      sample: CNAME
    value:
      description: Record value.
      type: str
      sample: _9f8e7d6c5b4a39281706f5e4d3c2b1a0.xlfgrmvvlj.acm-validations.aws.
tags:
  description: Tags of the certificate.
  returned: when O(state=present)
  type: dict
  sample: {Name: platform-prod, Environment: prod}
in_use_by:
  description: ARNs of the AWS resources using the certificate.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/platform-prod/0123456789abcdef]
hosted_zone_id:
  description: ID of the hosted zone holding the validation records.
  returned: when the hosted zone exists
  type: str
  sample: Z0123456789ABCDEFGHIJ
superseded_certificate_arns:
  description: Certificates with the same C(Name) tag for other names or key algorithms that are still in use,
    so they were left in place.
  returned: when O(state=present)
  type: list
  elements: str
deleted_certificate_arns:
  description: Certificates deleted (or, in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
removed_validation_records:
  description: Validation records removed from the zone (or, in check mode, that would be), same shape as
    RV(validation_records).
  returned: always
  type: list
  elements: dict
"""

import hashlib
import json
import re
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

LIVE_STATUSES = ["PENDING_VALIDATION", "ISSUED"]
FAILED_STATUSES = ["FAILED", "VALIDATION_TIMED_OUT"]
# ListCertificates returns only RSA_2048 certificates unless asked for every key type.
KEY_TYPES = ["RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]
LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(r"^(\*\.)?(" + LABEL + r"\.)+" + LABEL + "$")
MAX_PRIMARY_NAME = 64
MAX_NAME = 253
RECORDS_MIN_WAIT = 60
MAX_POLL_DELAY = 15
DIFF_KEYS = ("certificate_arn", "domain_name", "subject_alternative_names", "key_algorithm", "status", "tags")

acm_retry = AWSRetry.jittered_backoff(
    retries=10, catch_extra_error_codes=["ThrottlingException", "RequestInProgressException"]
)
route53_retry = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["PriorRequestNotComplete"])


class Want(NamedTuple):
    """The certificate the task describes, normalised."""

    name: str
    domain: Optional[str]
    sans: Tuple[str, ...]
    key_algorithm: str
    tags: Dict[str, str]
    purge_tags: bool
    ttl: int

    @property
    def all_names(self) -> List[str]:
        return sorted({self.domain, *self.sans}) if self.domain else []


class Zone(NamedTuple):
    id: str
    name: str


class CertificateInUseError(Exception):
    pass


class AcmErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ResourceNotFoundException")


class Route53ErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NoSuchHostedZone")


# ---- API wrappers: one AWS call each, retried, errors raised as AnsibleAWSError ----


@AcmErrorHandler.common_error_handler("list certificates")
def list_certificates(acm, statuses: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    params: Dict[str, Any] = {"Includes": {"keyTypes": KEY_TYPES}}
    if statuses:
        params["CertificateStatuses"] = statuses
    return paginated_query_with_retries(acm, "list_certificates", acm_retry, **params)["CertificateSummaryList"]


@AcmErrorHandler.list_error_handler("describe certificate")
def describe_certificate(acm, arn: str) -> Optional[Dict[str, Any]]:
    return acm.describe_certificate(aws_retry=True, CertificateArn=arn)["Certificate"]


@AcmErrorHandler.list_error_handler("describe requested certificate")
@AWSRetry.jittered_backoff(retries=6, delay=2, catch_extra_error_codes=["ResourceNotFoundException"])
def describe_requested_certificate(acm, arn: str) -> Optional[Dict[str, Any]]:
    # DescribeCertificate can answer ResourceNotFound for a few seconds after RequestCertificate.
    return acm.describe_certificate(aws_retry=True, CertificateArn=arn)["Certificate"]


@AcmErrorHandler.list_error_handler("list certificate tags")
def list_certificate_tags(acm, arn: str) -> Optional[Dict[str, str]]:
    return boto3_tag_list_to_ansible_dict(acm.list_tags_for_certificate(aws_retry=True, CertificateArn=arn)["Tags"])


@AcmErrorHandler.common_error_handler("request certificate")
def request_certificate(acm, params: Dict[str, Any]) -> str:
    return acm.request_certificate(aws_retry=True, **params)["CertificateArn"]


@AcmErrorHandler.deletion_error_handler("delete certificate")
def delete_certificate(acm, arn: str) -> bool:
    try:
        acm.delete_certificate(aws_retry=True, CertificateArn=arn)
    except is_boto3_error_code("ResourceInUseException") as e:
        raise CertificateInUseError(arn) from e
    return True


@AcmErrorHandler.common_error_handler("tag certificate")
def add_certificate_tags(acm, arn: str, tags: Dict[str, str]) -> None:
    acm.add_tags_to_certificate(aws_retry=True, CertificateArn=arn, Tags=ansible_dict_to_boto3_tag_list(tags))


@AcmErrorHandler.common_error_handler("untag certificate")
def remove_certificate_tags(acm, arn: str, keys: List[str]) -> None:
    acm.remove_tags_from_certificate(aws_retry=True, CertificateArn=arn, Tags=[{"Key": k} for k in keys])


@Route53ErrorHandler.list_error_handler("get hosted zone")
def get_hosted_zone(route53, zone_id: str) -> Optional[Dict[str, Any]]:
    return route53.get_hosted_zone(aws_retry=True, Id=zone_id)["HostedZone"]


@Route53ErrorHandler.common_error_handler("list hosted zones")
def list_hosted_zones_named(route53, name: str) -> List[Dict[str, Any]]:
    zones = route53.list_hosted_zones_by_name(aws_retry=True, DNSName=name)["HostedZones"]
    return [z for z in zones if z["Name"].rstrip(".").lower() == name]


@Route53ErrorHandler.common_error_handler("read validation record")
def get_cname_record(route53, zone_id: str, name: str) -> Optional[Dict[str, Any]]:
    found = route53.list_resource_record_sets(
        aws_retry=True, HostedZoneId=zone_id, StartRecordName=name, StartRecordType="CNAME", MaxItems="1"
    )["ResourceRecordSets"]
    if found and fqdn(found[0]["Name"]) == fqdn(name) and found[0]["Type"] == "CNAME":
        return found[0]
    return None


@Route53ErrorHandler.common_error_handler("change validation records")
def change_record_sets(route53, zone_id: str, changes: List[Dict[str, Any]]) -> None:
    route53.change_resource_record_sets(aws_retry=True, HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


# ---- Pure helpers ----


def fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def normalize_domain(name: str) -> str:
    return name.strip().rstrip(".").lower()


def check_params(params: Dict[str, Any]) -> List[str]:
    """Problems with the task's input, found without calling AWS."""
    problems = []
    name = (params.get("tags") or {}).get("Name")
    if not isinstance(name, str) or not name.strip():
        problems.append("tags must contain a non-empty 'Name' tag: it identifies the certificate on later runs")
    domain = params.get("domain_name")
    if params["state"] == "present" and not (domain or "").strip():
        problems.append("domain_name must be a non-empty domain name when state=present")
    elif domain is not None:
        problems.extend(check_domain(domain, MAX_PRIMARY_NAME, "domain_name"))
    for san in params.get("subject_alternative_names") or []:
        problems.extend(check_domain(san, MAX_NAME, "subject_alternative_names"))
    zone_name = params.get("hosted_zone_name")
    if zone_name is not None and (zone_name.strip().startswith("*") or check_domain(zone_name, MAX_NAME, "")):
        problems.append(f"hosted_zone_name {zone_name!r} is not a valid DNS zone name")
    if params.get("hosted_zone_id") is not None and not params["hosted_zone_id"].strip():
        problems.append("hosted_zone_id must not be empty")
    if params["validation_record_ttl"] < 0:
        problems.append("validation_record_ttl must be 0 or more")
    if params["wait_timeout"] < 0:
        problems.append("wait_timeout must be 0 or more")
    return problems


def check_domain(value: str, max_length: int, option: str) -> List[str]:
    domain = normalize_domain(value)
    if not DOMAIN_RE.match(domain):
        return [f"{option} {value!r} is not a valid domain name (letters, digits and hyphens, optionally '*.' first)"]
    if len(domain) > max_length:
        return [f"{option} {value!r} is longer than {max_length} characters"]
    return []


def want_from_params(params: Dict[str, Any]) -> Want:
    domain = normalize_domain(params["domain_name"]) if params.get("domain_name") else None
    sans = {normalize_domain(s) for s in params.get("subject_alternative_names") or []} - {domain}
    return Want(
        name=params["tags"]["Name"],
        domain=domain,
        sans=tuple(sorted(sans)),
        key_algorithm=params["key_algorithm"],
        tags={k: to_text(v) for k, v in params["tags"].items()},
        purge_tags=params["purge_tags"],
        ttl=params["validation_record_ttl"],
    )


def idempotency_token(want: Want, salt: str = "") -> str:
    material = json.dumps([want.name, want.domain, want.sans, want.key_algorithm, salt])
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def request_params(want: Want, token: str) -> Dict[str, Any]:
    params = {
        "DomainName": want.domain,
        "ValidationMethod": "DNS",
        "KeyAlgorithm": want.key_algorithm,
        "IdempotencyToken": token,
        "Tags": ansible_dict_to_boto3_tag_list(want.tags),
    }
    if want.sans:
        params["SubjectAlternativeNames"] = [want.domain, *want.sans]
    return params


def matches(cert: Dict[str, Any], want: Want) -> bool:
    names = sorted({normalize_domain(n) for n in cert.get("SubjectAlternativeNames", [])} | {want.domain})
    return (
        cert.get("Type") == "AMAZON_ISSUED"
        and normalize_domain(cert["DomainName"]) == want.domain
        and names == want.all_names
        and cert.get("KeyAlgorithm", "RSA_2048") == want.key_algorithm
    )


def pick_certificate(certs: List[Dict[str, Any]], want: Want) -> Optional[Dict[str, Any]]:
    """The issued (else newest) certificate matching the request."""
    candidates = [c for c in certs if matches(c, want)]
    candidates.sort(key=lambda c: (c["Status"] == "ISSUED", to_text(c.get("CreatedAt", ""))), reverse=True)
    return candidates[0] if candidates else None


def records_published(cert: Dict[str, Any]) -> bool:
    options = cert.get("DomainValidationOptions") or []
    return bool(options) and all("ResourceRecord" in o for o in options)


def validation_records(cert: Dict[str, Any]) -> List[Dict[str, str]]:
    """The certificate's DNS validation records; a name and its wildcard share one."""
    unique = {}
    for option in cert.get("DomainValidationOptions") or []:
        record = option.get("ResourceRecord")
        if record:
            key = (fqdn(record["Name"]), record["Type"], fqdn(record["Value"]))
            unique[key] = {"name": key[0], "type": key[1], "value": key[2]}
    return [unique[k] for k in sorted(unique)]


def names_outside_zone(want: Want, zone: Zone) -> List[str]:
    suffix = "." + zone.name
    return [n for n in want.all_names if not (n.lstrip("*.") == zone.name or n.endswith(suffix))]


def record_set_values(record_set: Dict[str, Any]) -> List[str]:
    return sorted(fqdn(r["Value"]) for r in record_set.get("ResourceRecords", []))


def upsert_change(record: Dict[str, str], ttl: int) -> Dict[str, Any]:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": record["name"],
            "Type": record["type"],
            "TTL": ttl,
            "ResourceRecords": [{"Value": record["value"]}],
        },
    }


def summarize(cert: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "certificate_arn": cert.get("CertificateArn"),
        "domain_name": cert.get("DomainName"),
        "subject_alternative_names": cert.get("SubjectAlternativeNames", []),
        "key_algorithm": cert.get("KeyAlgorithm"),
        "status": cert.get("Status"),
        "tags": cert.get("Tags", {}),
        "validation_records": validation_records(cert),
        "in_use_by": cert.get("InUseBy", []),
    }


def planned_certificate(want: Want) -> Dict[str, Any]:
    """What check mode reports for a certificate it would request."""
    return {
        "DomainName": want.domain,
        "SubjectAlternativeNames": want.all_names,
        "KeyAlgorithm": want.key_algorithm,
        "Tags": want.tags,
    }


def diff_view(summary: Dict[str, Any]) -> Dict[str, Any]:
    view = {k: summary.get(k) for k in DIFF_KEYS}
    view["validation_records"] = summary.get("validation_records", [])
    return view


def poll(read: Callable[[], Optional[Dict[str, Any]]], done: Callable[[Dict[str, Any]], bool], deadline: float):
    """Read until done() or the deadline; returns the last read (None when the resource vanished)."""
    delay = 1.0
    while True:
        item = read()
        if item is None or done(item) or time.monotonic() >= deadline:
            return item
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, MAX_POLL_DELAY)


# ---- Decisions ----


def resolve_zone(route53, params: Dict[str, Any]) -> Optional[Zone]:
    """The public zone named by the task; None when it does not exist."""
    if params.get("hosted_zone_id"):
        zone_id = params["hosted_zone_id"].strip().split("/")[-1]
        found = get_hosted_zone(route53, zone_id)
        zones = [found] if found else []
        label = zone_id
    else:
        label = normalize_domain(params["hosted_zone_name"])
        zones = list_hosted_zones_named(route53, label)
    public = [z for z in zones if not z.get("Config", {}).get("PrivateZone")]
    if zones and not public:
        raise AnsibleAWSError(
            message=f"Hosted zone {label} is private: ACM validates through public DNS, so the validation records "
            "must go into a public hosted zone"
        )
    if len(public) > 1:
        ids = ", ".join(z["Id"].split("/")[-1] for z in public)
        raise AnsibleAWSError(message=f"Several public hosted zones are named {label} ({ids}); use hosted_zone_id")
    if not public:
        return None
    return Zone(id=public[0]["Id"].split("/")[-1], name=normalize_domain(public[0]["Name"]))


def find_certificates(acm, name: str, statuses: Optional[List[str]], domain: Optional[str] = None) -> List[Dict]:
    """Described certificates carrying the Name tag (and domain, when given), with their tags under 'Tags'."""
    found = []
    for summary in list_certificates(acm, statuses):
        if domain and normalize_domain(summary["DomainName"]) != domain:
            continue
        tags = list_certificate_tags(acm, summary["CertificateArn"])
        if tags is None or tags.get("Name") != name:
            continue
        cert = describe_certificate(acm, summary["CertificateArn"])
        if cert is not None:
            cert["Tags"] = tags
            found.append(cert)
    return found


def records_still_needed(acm, ignore_arns: List[str]) -> List[Dict[str, str]]:
    """Validation records of the account's live certificates other than ignore_arns (needed to renew them)."""
    needed = []
    for summary in list_certificates(acm, LIVE_STATUSES):
        if summary["CertificateArn"] not in ignore_arns:
            cert = describe_certificate(acm, summary["CertificateArn"])
            needed.extend(validation_records(cert or {}))
    return needed


def request_new_certificate(acm, want: Want) -> Dict[str, Any]:
    arn = request_certificate(acm, request_params(want, idempotency_token(want)))
    cert = describe_requested_certificate(acm, arn)
    if cert is None or cert["Status"] not in LIVE_STATUSES:
        # ACM answers a token it saw within the hour with the same ARN, even if that certificate has since
        # been deleted or failed; ask again with a token that has not been used.
        arn = request_certificate(acm, request_params(want, idempotency_token(want, salt=arn)))
        cert = describe_requested_certificate(acm, arn)
    if cert is None:
        raise AnsibleAWSError(message=f"ACM returned certificate {arn} but does not describe it")
    cert["Tags"] = dict(want.tags)
    return cert


def missing_records(route53, zone: Zone, records: List[Dict[str, str]], ttl: int) -> List[Dict[str, str]]:
    """The validation records that are not exactly (value and TTL) in the zone yet."""
    missing = []
    for record in records:
        existing = get_cname_record(route53, zone.id, record["name"])
        if not (existing and existing.get("TTL") == ttl and record_set_values(existing) == [record["value"]]):
            missing.append(record)
    return missing


def stale_record_sets(route53, zone: Zone, records: List[Dict[str, str]]) -> List[Dict[str, Any]]:
    """The zone's record sets that are exactly these validation records."""
    found = []
    for record in records:
        if not record["name"].endswith("." + zone.name + "."):
            continue
        existing = get_cname_record(route53, zone.id, record["name"])
        if existing and record_set_values(existing) == [record["value"]]:
            found.append(existing)
    return found


def ensure_tags(module, acm, cert: Dict[str, Any], want: Want) -> bool:
    current = cert.get("Tags", {})
    to_set, to_unset = compare_aws_tags(current, want.tags, purge_tags=want.purge_tags)
    if not (to_set or to_unset):
        return False
    if not module.check_mode:
        if to_unset:
            remove_certificate_tags(acm, cert["CertificateArn"], to_unset)
        if to_set:
            add_certificate_tags(acm, cert["CertificateArn"], to_set)
    cert["Tags"] = {**{k: v for k, v in current.items() if k not in to_unset}, **to_set}
    return True


def wait_for_records(acm, cert: Dict[str, Any], deadline: float) -> Dict[str, Any]:
    arn = cert["CertificateArn"]
    if not records_published(cert):
        cert = dict(poll(lambda: describe_certificate(acm, arn), records_published, deadline) or {}, Tags=cert["Tags"])
    if not records_published(cert):
        raise AnsibleAWSError(message=f"ACM did not publish the DNS validation records of {arn} in time")
    return cert


def wait_for_issue(acm, cert: Dict[str, Any], deadline: float, timeout: int) -> Dict[str, Any]:
    arn = cert["CertificateArn"]
    cert = dict(
        poll(lambda: describe_certificate(acm, arn), lambda c: c["Status"] != "PENDING_VALIDATION", deadline) or {},
        Tags=cert["Tags"],
    )
    if cert.get("Status") == "PENDING_VALIDATION":
        raise AnsibleAWSError(
            message=f"Certificate {arn} was still PENDING_VALIDATION after {timeout} seconds; check that the zone "
            "is the one the domain is delegated to, or raise wait_timeout",
            certificate_arn=arn,
        )
    return cert


def raise_if_failed(cert: Dict[str, Any]) -> None:
    if cert.get("Status") in FAILED_STATUSES or not cert.get("Status"):
        raise AnsibleAWSError(
            message=f"ACM could not issue certificate {cert.get('CertificateArn')} for {cert.get('DomainName')}: "
            f"{cert.get('Status', 'DELETED')} ({cert.get('FailureReason', 'no reason given')})",
            certificate_arn=cert.get("CertificateArn"),
            status=cert.get("Status"),
            failure_reason=cert.get("FailureReason"),
        )


def delete_released_certificate(acm, arn: str, deadline: float) -> None:
    """Delete, retrying while ACM still reports the certificate in use until the deadline."""
    delay = 5.0
    while True:
        try:
            delete_certificate(acm, arn)
            return
        except CertificateInUseError:
            if time.monotonic() + delay > deadline:
                users = (describe_certificate(acm, arn) or {}).get("InUseBy") or ["(not reported)"]
                raise AnsibleAWSError(
                    message=f"Certificate {arn} is still in use by: {', '.join(users)}. Remove it from these "
                    "resources (or delete them) first; ACM may report it in use for some minutes afterwards",
                    certificate_arn=arn,
                    in_use_by=users,
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def retire_certificates(
    module, acm, route53, zone: Optional[Zone], doomed: List[Dict], *, keep: Optional[Dict], deadline: float
) -> Tuple[List[str], List[Dict[str, str]]]:
    """Delete the doomed certificates, then those of their validation records no other certificate needs."""
    if not doomed:
        return [], []
    arns = [c["CertificateArn"] for c in doomed]
    record_sets: List[Dict[str, Any]] = []
    if zone is not None:
        needed = records_still_needed(acm, arns) + validation_records(keep or {})
        stale = {(r["name"], r["value"]): r for c in doomed for r in validation_records(c) if r not in needed}
        record_sets = stale_record_sets(route53, zone, list(stale.values()))
    if not module.check_mode:
        for arn in arns:
            delete_released_certificate(acm, arn, deadline)
        if record_sets:
            change_record_sets(route53, zone.id, [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in record_sets])
    removed = [{"name": fqdn(rs["Name"]), "type": rs["Type"], "value": record_set_values(rs)[0]} for rs in record_sets]
    return arns, removed


def obtain_certificate(module, acm, route53, zone: Zone, want: Want, *, cert: Optional[Dict], started: float):
    """Request (unless found), write the validation records, sync tags and wait. Returns (cert, changed, in_zone)."""
    timeout = module.params["wait_timeout"]
    if cert is None and module.check_mode:
        return planned_certificate(want), True, []
    changed = cert is None
    cert = cert or request_new_certificate(acm, want)
    cert = wait_for_records(acm, cert, started + max(timeout, RECORDS_MIN_WAIT))
    records = validation_records(cert)
    missing = missing_records(route53, zone, records, want.ttl)
    if missing and not module.check_mode:
        change_record_sets(route53, zone.id, [upsert_change(r, want.ttl) for r in missing])
    changed |= bool(missing)
    changed |= ensure_tags(module, acm, cert, want)
    if module.params["wait"] and not module.check_mode and cert["Status"] == "PENDING_VALIDATION":
        cert = wait_for_issue(acm, cert, started + timeout, timeout)
    raise_if_failed(cert)
    return cert, changed, [r for r in records if r not in missing]


def ensure_present(module, acm, route53, zone: Zone, want: Want) -> Dict[str, Any]:
    started = time.monotonic()
    found = find_certificates(acm, want.name, LIVE_STATUSES)
    current = pick_certificate(found, want)
    before = diff_view(summarize(current)) if current else {}
    cert, changed, in_zone = obtain_certificate(module, acm, route53, zone, want, cert=current, started=started)
    if current:
        before["validation_records"] = in_zone

    others = [c for c in found if c is not current]
    superseded = sorted(c["CertificateArn"] for c in others if c.get("InUseBy"))
    for arn in superseded:
        module.warn(
            f"Certificate {arn} (Name={want.name}) is superseded by {cert.get('CertificateArn')} but still in use;"
            " a later run deletes it once nothing uses it"
        )
    released = [c for c in others if not c.get("InUseBy")]
    deleted, removed = retire_certificates(module, acm, route53, zone, released, keep=cert, deadline=started)

    summary = summarize(cert)
    after = diff_view(summary)
    if others:
        before["superseded_certificate_arns"] = sorted(c["CertificateArn"] for c in others)
        after["superseded_certificate_arns"] = superseded
    return dict(
        summary,
        changed=changed or bool(deleted),
        hosted_zone_id=zone.id,
        superseded_certificate_arns=superseded,
        deleted_certificate_arns=deleted,
        removed_validation_records=removed,
        diff={"before": before, "after": after},
    )


def ensure_absent(module, acm, route53, zone: Optional[Zone], want: Want) -> Dict[str, Any]:
    doomed = find_certificates(acm, want.name, None, want.domain)
    if zone is None:
        module.warn("The hosted zone does not exist; only the certificates are deleted")
    deadline = time.monotonic() + (module.params["wait_timeout"] if module.params["wait"] else 0)
    deleted, removed = retire_certificates(module, acm, route53, zone, doomed, keep=None, deadline=deadline)
    result = dict(changed=bool(deleted), deleted_certificate_arns=deleted, removed_validation_records=removed)
    if zone is not None:
        result["hosted_zone_id"] = zone.id
    result["diff"] = {
        "before": {"certificates": [diff_view(summarize(c)) for c in doomed]},
        "after": {"certificates": []},
    }
    return result


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        domain_name=dict(type="str"),
        subject_alternative_names=dict(type="list", elements="str", default=[]),
        hosted_zone_id=dict(type="str"),
        hosted_zone_name=dict(type="str"),
        key_algorithm=dict(type="str", choices=["RSA_2048", "EC_prime256v1", "EC_secp384r1"], default="RSA_2048"),
        validation_record_ttl=dict(type="int", default=300),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        tags=dict(type="dict", required=True, aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["hosted_zone_id", "hosted_zone_name"]],
        mutually_exclusive=[["hosted_zone_id", "hosted_zone_name"]],
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    want = want_from_params(module.params)

    acm = module.client("acm", retry_decorator=acm_retry)
    route53 = module.client("route53", retry_decorator=route53_retry)
    try:
        zone = resolve_zone(route53, module.params)
        if module.params["state"] == "absent":
            result = ensure_absent(module, acm, route53, zone, want)
        elif zone is None:
            zone_label = module.params["hosted_zone_id"] or module.params["hosted_zone_name"]
            raise AnsibleAWSError(message=f"Hosted zone {zone_label} does not exist (or is not public)")
        elif names_outside_zone(want, zone):
            raise AnsibleAWSError(
                message=f"{', '.join(names_outside_zone(want, zone))} not in hosted zone "
                f"{zone.name}: their validation records could not be written there"
            )
        else:
            result = ensure_present(module, acm, route53, zone, want)
    except AnsibleAWSError as e:
        if e.exception:
            module.fail_json_aws(e.exception, msg=e.message, **e.kwargs)
        module.fail_json(msg=e.message, **e.kwargs)

    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
