"""With IAM enforcement on, an action is authorized against the resource it acts on, as AWS does.

AWS evaluates an identity policy's ``Resource`` against the ARN of what a call touches (the service
authorization reference lists the resource of each action): ``ssm:GetParameter`` on
``/ecs-prod/prod/db/password`` is allowed only by a statement naming that parameter (or a pattern
matching it). moto's enforcement (off unless ``INITIAL_NO_AUTH_ACTION_COUNT`` is set, or
``/moto-api/reset-auth`` is posted) checks the resource only for IAM roles, STS, S3 and SQS and uses
``*`` for everything else, so a least-privilege policy that names its resources is denied every call.
This patch gives moto the resource ARN of the calls the collection's playbooks make (ECR
repositories, ECS services and task definitions, load balancer listeners and rules, SSM parameters,
RDS instances); a call with several resources (``DescribeServices`` of two services) must be allowed
on each. Other calls keep moto's ``*``.

The local cloud's own credentials, the dummy access key ``testing`` without a session token, are
the local account's root: AWS never restricts an account's root user with identity policies. The
operator's admin runs, the data plane (which stands in for AWS's own machinery) and the tasks (whose
task role credentials are these dummies) use them, so they keep working with enforcement on; only
identities created in IAM (users' keys, assumed roles) are authorized against their policies.
``sts:AssumeRoleWithWebIdentity`` is an unsigned call in AWS, authorized by the role's trust policy
(``sts_web_identity_trust``), not by a signature.

moto also names an action by the service's signing name, not its IAM prefix: CloudWatch signs as
``monitoring`` but its actions are ``cloudwatch:DescribeAlarms``; this patch names them as IAM does.

A denial is answered as AWS answers it: moto sends its XML ``AccessDenied`` to every protocol, which
an SDK of a JSON service (ECR, ECS, SSM, CloudWatch Logs) cannot parse (boto3 reports an error
``403`` with the raw XML); here a JSON call gets ``AccessDeniedException`` in JSON, and the message
names the resource (``... is not authorized to perform: ssm:GetParameter on resource: arn:...``).

moto still does not evaluate conditions in identity policies (``iam:PassedToService``), nor check
``iam:PassRole`` when a task definition names a role: docs/cicd.md says what is tested instead.
"""

from __future__ import annotations

import json
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError, _RESTError
from moto.iam.access_control import IAMRequestBase
from moto.utilities.utils import get_partition

ROOT_ACCESS_KEY = "testing"  # the local cloud's dummy credentials (inventories/local, the data plane, tasks)


def _params(response) -> dict[str, Any]:
    """The request's parameters, whatever the protocol: JSON body, or query string and form."""
    body = response.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if body and body.lstrip().startswith("{"):
        try:
            parsed = json.loads(body)
            return parsed if isinstance(parsed, dict) else {}
        except ValueError:
            return {}
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in (response.querystring or {}).items()}


def _members(params: dict[str, Any], prefix: str) -> list[str]:
    """Query protocol lists: Prefix.member.1, Prefix.member.2, ..."""
    found = sorted(
        ((int(k.rsplit(".", 1)[1]), v) for k, v in params.items() if k.startswith(f"{prefix}.member.")),
        key=lambda item: item[0],
    )
    return [v if isinstance(v, str) else v[0] for _, v in found]


def _access_key(response) -> str:
    authorization = response.headers.get("Authorization") or ""
    return authorization.partition("Credential=")[2].partition("/")[0]


def _signing_service(response) -> str:
    authorization = response.headers.get("Authorization") or ""
    scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def _ecr(action: str, params: dict, prefix: str) -> list[str]:
    if action == "GetAuthorizationToken":
        return []
    names = params.get("repositoryNames") or ([params["repositoryName"]] if params.get("repositoryName") else [])
    return [f"{prefix.format('ecr')}:repository/{name}" for name in names]


def _ecs(action: str, params: dict, prefix: str) -> list[str]:
    if action in ("TagResource", "UntagResource", "ListTagsForResource") and params.get("resourceArn"):
        return [params["resourceArn"]]
    if action not in ("UpdateService", "DescribeServices", "DeleteService"):
        return []
    cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
    names = params.get("services") or ([params["service"]] if params.get("service") else [])
    return [name if name.startswith("arn:") else f"{prefix.format('ecs')}:service/{cluster}/{name}" for name in names]


def _elasticloadbalancing(action: str, params: dict, prefix: str) -> list[str]:  # noqa: ARG001 - ARNs in the call
    if action.startswith("Describe"):
        return []
    if action in ("AddTags", "RemoveTags"):
        return _members(params, "ResourceArns")
    found = [params[key] for key in ("ListenerArn", "RuleArn", "TargetGroupArn", "LoadBalancerArn") if key in params]
    return found[:1]


def _ssm(action: str, params: dict, prefix: str) -> list[str]:
    def parameter(name: str) -> str:
        return f"{prefix.format('ssm')}:parameter{name if name.startswith('/') else '/' + name}"

    if action in ("GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory") and params.get("Name"):
        return [parameter(params["Name"])]
    if action in ("GetParameters", "DeleteParameters") and params.get("Names"):
        return [parameter(name) for name in params["Names"]]
    tagging = ("AddTagsToResource", "RemoveTagsFromResource", "ListTagsForResource")
    if action in tagging and params.get("ResourceType") == "Parameter":
        return [parameter(params["ResourceId"])]
    return []


def _rds(action: str, params: dict, prefix: str) -> list[str]:  # noqa: ARG001 - every instance action alike
    identifier = params.get("DBInstanceIdentifier")
    return [f"{prefix.format('rds')}:db:{identifier}"] if identifier else []


BY_SERVICE = {"ecr": _ecr, "ecs": _ecs, "elasticloadbalancing": _elasticloadbalancing, "ssm": _ssm, "rds": _rds}


def resources(response) -> list[str]:
    """The ARNs the call acts on, or [] where this patch does not know them (moto's ``*``)."""
    of_service = BY_SERVICE.get(_signing_service(response))
    if of_service is None:
        return []
    region = response.region
    prefix = f"arn:{get_partition(region)}:{{}}:{region}:{response.current_account}"
    return of_service(response._get_action(), _params(response), prefix)


def denial(response, error: _RESTError, arn: str) -> _RESTError:
    """moto's denial as the service's protocol carries it, naming the resource (AWS's wording)."""
    if error.error_type != "AccessDenied":
        return error  # an unknown key, a bad signature: as moto says it
    message = error.message if arn == "*" else f"{error.message} on resource: {arn}"
    if "X-Amz-Target" in response.headers:  # the JSON protocols (awsJson1_0/1_1)
        json_error = JsonRESTError("AccessDeniedException", message)
        json_error.code = error.code
        return json_error
    xml_error = _RESTError("AccessDenied", message)
    xml_error.code = error.code
    return xml_error


# Signing name -> IAM action prefix, where they differ (the service authorization reference).
IAM_PREFIX = {"monitoring": "cloudwatch"}


def apply() -> None:
    original_init = IAMRequestBase.__init__

    def init(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        service, _, action = self._action.partition(":")
        self._action = f"{IAM_PREFIX.get(service, service)}:{action}"

    IAMRequestBase.__init__ = init
    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self, resource: str = "*") -> None:
        enforcing = ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT
        if not enforcing:
            return original(self, resource)
        if _access_key(self) == ROOT_ACCESS_KEY and "X-Amz-Security-Token" not in self.headers:
            return None
        if self._get_action() == "AssumeRoleWithWebIdentity" and "Authorization" not in self.headers:
            return None  # unsigned in AWS: the trust policy decides (sts_web_identity_trust)
        found = resources(self) if resource == "*" else []
        for arn in found or [resource]:
            try:
                original(self, arn)
            except _RESTError as error:
                raise denial(self, error, arn) from None
        return None

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize
