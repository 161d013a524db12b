"""WAFv2 web ACL associations as AWS keeps them: ListResourcesForWebACL, one web ACL per resource, and no
deletion of a web ACL that still protects a resource.

moto 5 implements AssociateWebACL and GetWebACLForResource but not ListResourcesForWebACL, which
community.aws.wafv2_resources reads to decide whether a load balancer is associated (it fails on moto's
"not yet implemented"). On AWS:

- ``ListResourcesForWebACL`` returns the ARNs of the resources associated with the web ACL (for a REGIONAL
  web ACL, by ``ResourceType``, APPLICATION_LOAD_BALANCER when not given);
- ``AssociateWebACL`` of a resource that another web ACL protects moves it (a resource has at most one web
  ACL), and associating it again changes nothing (moto appends it once more);
- ``DeleteWebACL`` of a web ACL still associated with a resource fails with WAFAssociatedItemException, so
  teardown must disassociate first, as it must on AWS.
"""

from __future__ import annotations

import json

from moto.wafv2.exceptions import WAFv2ClientError
from moto.wafv2.models import WAFV2Backend
from moto.wafv2.responses import WAFV2Response

RESOURCE_TYPES = {
    "APPLICATION_LOAD_BALANCER": ":elasticloadbalancing:",
    "API_GATEWAY": ":apigateway:",
    "APPSYNC": ":appsync:",
    "COGNITO_USER_POOL": ":cognito-idp:",
    "APP_RUNNER_SERVICE": ":apprunner:",
    "VERIFIED_ACCESS_INSTANCE": ":ec2:",
}


class WAFAssociatedItemException(WAFv2ClientError):
    def __init__(self) -> None:
        super().__init__(
            "WAFAssociatedItemException",
            "AWS WAF couldn’t perform the operation because your resource is being used by another resource or it’s "
            "associated with another resource.",
        )


def apply() -> None:
    original_associate = WAFV2Backend.associate_web_acl
    original_delete = WAFV2Backend.delete_web_acl

    def associate_web_acl(self, web_acl_arn: str, resource_arn: str) -> None:
        if web_acl_arn in self.wacls:  # an unknown ACL keeps moto's WAFNonexistentItemException
            for web_acl in self.wacls.values():
                while resource_arn in web_acl.associated_resources:
                    web_acl.associated_resources.remove(resource_arn)
        original_associate(self, web_acl_arn, resource_arn)

    def delete_web_acl(self, name: str, scope: str, _id: str, lock_token: str) -> None:
        for web_acl in self.wacls.values():
            if web_acl.name == name and web_acl.id == _id and web_acl.associated_resources:
                raise WAFAssociatedItemException()
        original_delete(self, name, scope, _id, lock_token)

    def list_resources_for_web_acl(self, web_acl_arn: str, resource_type: str | None) -> list[str]:
        web_acl = self.get_web_acl(web_acl_arn, None, None)  # WAFNonexistentItemException when unknown
        marker = RESOURCE_TYPES.get(resource_type or "APPLICATION_LOAD_BALANCER", ":")
        return [arn for arn in web_acl.associated_resources if marker in arn]

    def list_resources_for_web_acl_response(self):
        body = json.loads(self.body)
        arns = self.wafv2_backend.list_resources_for_web_acl(body["WebACLArn"], body.get("ResourceType"))
        return 200, {"Content-Type": "application/json"}, json.dumps({"ResourceArns": arns})

    WAFV2Backend.associate_web_acl = associate_web_acl
    WAFV2Backend.delete_web_acl = delete_web_acl
    WAFV2Backend.list_resources_for_web_acl = list_resources_for_web_acl
    WAFV2Response.list_resources_for_web_acl = list_resources_for_web_acl_response
