#!/usr/bin/python

# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible modules import below DOCUMENTATION, EXAMPLES and RETURN.
# ruff: noqa: E402

DOCUMENTATION = r"""
---
module: iam_oidc_provider
version_added: 0.1.0
short_description: An IAM OpenID Connect identity provider (such as GitHub Actions'), found by its URL
description:
  - Creates, converges or deletes one IAM OpenID Connect (OIDC) identity provider, the account-wide object that
    lets a role trust the tokens of an issuer such as GitHub Actions (V(https://token.actions.githubusercontent.com))
    through C(sts:AssumeRoleWithWebIdentity), without any stored access key.
  - The provider is found by its URL among C(ListOpenIDConnectProviders) (its ARN ends with the URL's host and path),
    then read with C(GetOpenIDConnectProvider); a run that changes nothing makes no other call.
  - Converges the audiences (client IDs) with C(AddClientIDToOpenIDConnectProvider) and
    C(RemoveClientIDFromOpenIDConnectProvider), the thumbprints with C(UpdateOpenIDConnectProviderThumbprint) and the
    tags with C(TagOpenIDConnectProvider) and C(UntagOpenIDConnectProvider).
  - amazon.aws 10 and community.aws 10 have no module for OIDC providers, hence this one.
author:
  - ecs_production.platform contributors (@ecs-production)
options:
  url:
    description:
      - The issuer's URL, V(https://) followed by a host and an optional path, without a trailing slash.
    type: str
    required: true
  client_ids:
    description:
      - The audiences a token must carry (its C(aud) claim); V(sts.amazonaws.com) for GitHub Actions with
        aws-actions/configure-aws-credentials.
      - Required with O(state=present) for a new provider; left as they are on an existing one when not given.
    type: list
    elements: str
  purge_client_ids:
    description:
      - Whether audiences not in O(client_ids) are removed. V(false) adds what is missing and keeps the rest, for
        a provider that other roles or tools share.
    type: bool
    default: true
  thumbprints:
    description:
      - SHA-1 fingerprints (40 hexadecimal digits) of the issuer's certificates.
      - AWS secures the connection to well-known issuers such as GitHub's with its own trusted root certificates
        and ignores these then; left as they are when not given (none on a new provider).
    type: list
    elements: str
  tags:
    description: The provider's tags. Left as they are when not given.
    type: dict
  purge_tags:
    description: Whether tags not in O(tags) are removed.
    type: bool
    default: true
  state:
    description:
      - V(present) creates the provider or converges its audiences, thumbprints and tags.
      - V(absent) deletes it; a missing one is left alone.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (no write; on an account without the provider nothing is returned but RV(changes))
    and diff mode (the audiences, thumbprints and tags before and after).
  - The provider is account-wide; several roles and environments may trust it. Delete it only when none does.
  - API calls are retried on throttling.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Let GitHub Actions' tokens assume roles of this account
  ecs_production.platform.iam_oidc_provider:
    url: https://token.actions.githubusercontent.com
    client_ids: [sts.amazonaws.com]
    tags: {Project: ecs-prod, ManagedBy: ecs_production.platform}
  register: github_oidc

- name: Remove it (no role may trust it any more)
  ecs_production.platform.iam_oidc_provider:
    url: https://token.actions.githubusercontent.com
    state: absent
"""

RETURN = r"""
arn:
  description: The provider's ARN.
  returned: when the provider exists (not in check mode on an account without it)
  type: str
  sample: arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com
url:
  description: The issuer's URL as given.
  returned: always
  type: str
  sample: https://token.actions.githubusercontent.com
client_ids:
  description: The audiences after the run.
  returned: when the provider exists
  type: list
  elements: str
  sample: [sts.amazonaws.com]
thumbprints:
  description: The thumbprints after the run.
  returned: when the provider exists
  type: list
  elements: str
  sample: []
tags:
  description: The provider's tags after the run.
  returned: when the provider exists
  type: dict
  sample: {Project: ecs-prod, ManagedBy: ecs_production.platform}
changes:
  description: What was (or would be) written, one line each.
  returned: always
  type: list
  elements: str
  sample: ["create provider https://token.actions.githubusercontent.com"]
"""

import re
from typing import Any, Dict, List, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.ecs_production.platform.plugins.module_utils.common import Refused

IAM_RETRY = AWSRetry.jittered_backoff(retries=10)
URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")
THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")


class IAMErrorHandler(AWSErrorHandler):
    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NoSuchEntity")


# ---- Input (no AWS call) ----


def check_params(params: Dict[str, Any]) -> List[str]:
    """Problems AnsibleModule's own checks do not catch; found before any AWS call."""
    problems = []
    url = params["url"]
    if not URL.match(url) or url.endswith("/"):
        problems.append(
            f"url must be https:// followed by a host and an optional path, without a trailing slash, not {url!r}"
        )
    for thumbprint in params["thumbprints"] or []:
        if not THUMBPRINT.match(thumbprint):
            problems.append(f"thumbprints must be 40 hexadecimal digits each, not {thumbprint!r}")
    client_ids = params["client_ids"]
    if client_ids is not None and (not client_ids or any(not c for c in client_ids)):
        problems.append("client_ids must list at least one non-empty audience (e.g. sts.amazonaws.com)")
    return problems


def arn_suffix(url: str) -> str:
    """What a provider's ARN ends with: oidc-provider/<host and path of the URL>."""
    return "oidc-provider/" + url[len("https://") :]


# ---- AWS ----


@IAMErrorHandler.common_error_handler("list the OIDC providers")
def find_provider_arn(client, url: str) -> Optional[str]:
    suffix = ":" + arn_suffix(url)
    providers = client.list_open_id_connect_providers(aws_retry=True).get("OpenIDConnectProviderList", [])
    for provider in providers:
        if provider["Arn"].endswith(suffix):
            return provider["Arn"]
    return None


@IAMErrorHandler.common_error_handler("read the OIDC provider")
def get_provider(client, arn: str) -> Dict[str, Any]:
    return client.get_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn)


@IAMErrorHandler.common_error_handler("create the OIDC provider")
def create_provider(client, url: str, client_ids: List[str], thumbprints: List[str], tags: Dict[str, Any]) -> str:
    params: Dict[str, Any] = {"Url": url, "ClientIDList": client_ids}
    if thumbprints:
        params["ThumbprintList"] = thumbprints
    if tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    return client.create_open_id_connect_provider(aws_retry=True, **params)["OpenIDConnectProviderArn"]


@IAMErrorHandler.common_error_handler("add an audience to the OIDC provider")
def add_client_id(client, arn: str, client_id: str) -> None:
    client.add_client_id_to_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn, ClientID=client_id)


@IAMErrorHandler.common_error_handler("remove an audience from the OIDC provider")
def remove_client_id(client, arn: str, client_id: str) -> None:
    client.remove_client_id_from_open_id_connect_provider(
        aws_retry=True, OpenIDConnectProviderArn=arn, ClientID=client_id
    )


@IAMErrorHandler.common_error_handler("update the OIDC provider's thumbprints")
def update_thumbprints(client, arn: str, thumbprints: List[str]) -> None:
    client.update_open_id_connect_provider_thumbprint(
        aws_retry=True, OpenIDConnectProviderArn=arn, ThumbprintList=thumbprints
    )


@IAMErrorHandler.common_error_handler("tag the OIDC provider")
def tag_provider(client, arn: str, tags: Dict[str, Any]) -> None:
    client.tag_open_id_connect_provider(
        aws_retry=True, OpenIDConnectProviderArn=arn, Tags=ansible_dict_to_boto3_tag_list(tags)
    )


@IAMErrorHandler.common_error_handler("untag the OIDC provider")
def untag_provider(client, arn: str, keys: List[str]) -> None:
    client.untag_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn, TagKeys=keys)


@IAMErrorHandler.deletion_error_handler("delete the OIDC provider")
def delete_provider(client, arn: str) -> None:
    client.delete_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn)


# ---- Converging ----


def summary(provider: Dict[str, Any]) -> Dict[str, Any]:
    """What diff mode shows of a provider."""
    return {k: provider[k] for k in ("client_ids", "thumbprints", "tags") if k in provider}


class Converger:
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.url = self.params["url"]
        self.changes: List[str] = []

    @property
    def writing(self) -> bool:
        return not self.module.check_mode

    def converge(self) -> Dict[str, Any]:
        arn = find_provider_arn(self.client, self.url)
        if self.params["state"] == "absent":
            return self.absent(arn)
        if arn is None:
            return self.create()
        return self.update(arn)

    def result(self, before: Dict[str, Any], after: Dict[str, Any]) -> Dict[str, Any]:
        result = {
            "url": self.url,
            "changes": self.changes,
            "diff": {"before": summary(before), "after": summary(after)},
        }
        result.update(after)
        return result

    def read(self, arn: str) -> Dict[str, Any]:
        found = get_provider(self.client, arn)
        return {
            "arn": arn,
            "client_ids": list(found.get("ClientIDList", [])),
            "thumbprints": list(found.get("ThumbprintList", [])),
            "tags": boto3_tag_list_to_ansible_dict(found.get("Tags", [])),
        }

    def create(self) -> Dict[str, Any]:
        client_ids = self.params["client_ids"]
        if not client_ids:
            raise Refused(f"client_ids is required to create the OIDC provider {self.url}. Nothing was changed.")
        thumbprints = [t.lower() for t in self.params["thumbprints"] or []]
        tags = dict(self.params["tags"] or {})
        self.changes.append(f"create provider {self.url}")
        after: Dict[str, Any] = {
            "client_ids": list(client_ids),
            "thumbprints": thumbprints,
            "tags": {k: str(v) for k, v in tags.items()},
        }
        if self.writing:
            after = dict(arn=create_provider(self.client, self.url, client_ids, thumbprints, tags), **after)
        return self.result({}, after)

    def update(self, arn: str) -> Dict[str, Any]:
        before = self.read(arn)
        after = dict(before)
        wanted = self.params["client_ids"]
        if wanted is not None:
            for client_id in [c for c in wanted if c not in before["client_ids"]]:
                self.changes.append(f"add audience {client_id}")
                if self.writing:
                    add_client_id(self.client, arn, client_id)
            kept = [c for c in before["client_ids"] if c not in wanted]
            if self.params["purge_client_ids"]:
                for client_id in kept:
                    self.changes.append(f"remove audience {client_id}")
                    if self.writing:
                        remove_client_id(self.client, arn, client_id)
                kept = []
            after["client_ids"] = list(dict.fromkeys(kept + list(wanted)))
        thumbprints = self.params["thumbprints"]
        if thumbprints is not None:
            thumbprints = [t.lower() for t in thumbprints]
            if sorted(thumbprints) != sorted(t.lower() for t in before["thumbprints"]):
                self.changes.append("update thumbprints")
                if self.writing:
                    update_thumbprints(self.client, arn, thumbprints)
                after["thumbprints"] = thumbprints
        if self.params["tags"] is not None:
            after["tags"] = self.update_tags(arn, before["tags"])
        return self.result(before, after)

    def update_tags(self, arn: str, current: Dict[str, str]) -> Dict[str, str]:
        to_set, to_remove = compare_aws_tags(current, self.params["tags"], self.params["purge_tags"])
        if to_remove:
            self.changes.append(f"untag {', '.join(sorted(to_remove))}")
            if self.writing:
                untag_provider(self.client, arn, sorted(to_remove))
        if to_set:
            self.changes.append(f"tag {', '.join(sorted(to_set))}")
            if self.writing:
                tag_provider(self.client, arn, to_set)
        tags = {k: v for k, v in current.items() if k not in to_remove}
        tags.update({k: str(v) for k, v in to_set.items()})
        return tags

    def absent(self, arn: Optional[str]) -> Dict[str, Any]:
        if arn is None:
            return self.result({}, {})
        before = self.read(arn)
        self.changes.append(f"delete provider {self.url}")
        if self.writing:
            delete_provider(self.client, arn)
        return self.result(before, {})


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            client_ids=dict(type="list", elements="str"),
            purge_client_ids=dict(type="bool", default=True),
            thumbprints=dict(type="list", elements="str", no_log=False),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    problems = check_params(module.params)
    if problems:
        module.fail_json(msg=f"{'; '.join(problems)}. No AWS call was made.")
    client = module.client("iam", retry_decorator=IAM_RETRY)
    converger = Converger(module, client)
    try:
        result = converger.converge()
    except Refused as e:
        module.fail_json(msg=e.message, url=converger.url, changes=converger.changes)
    except AnsibleAWSError as e:
        e.message = f"{converger.url}: {e.message}"
        module.fail_json_aws_error(e)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
