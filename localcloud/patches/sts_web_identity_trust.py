"""AssumeRoleWithWebIdentity is refused unless the role's trust policy admits the token, as AWS does.

AWS (STS): the role must trust ``Principal.Federated`` = the account's OIDC provider for the token's
issuer (``iss``), the token's audience (``aud``) must be one of the provider's client IDs, and the
statement's conditions are evaluated against the token's claims as ``<issuer host>:<claim>``
(``token.actions.githubusercontent.com:sub`` = ``repo:OWNER/REPO:environment:prod``). moto hands out
credentials for any role and any token. This patch evaluates the trust policy (``StringEquals``,
``StringLike``, ``StringNotEquals``, ``StringNotLike``; any other operator fails closed) against
the token's claims. It does not verify the token's signature: the local cloud cannot know the
issuer's keys, so a test makes its own unsigned token with the claims it wants.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from typing import Any

from moto.core.exceptions import AccessDeniedError
from moto.iam.models import iam_backends
from moto.sts.responses import TokenResponse
from moto.utilities.utils import get_partition

ACTION = "sts:AssumeRoleWithWebIdentity"


def claims_of(token: str) -> dict[str, Any]:
    """The JWT's payload, unverified; {} when it is not a JWT."""
    parts = (token or "").split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str) -> bool:
    # IAM's wildcards are * and ? only: a [ in a pattern is literal.
    return any(fnmatch.fnmatchcase(value, str(p).replace("[", "[[]")) for p in _as_list(patterns))


def condition_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    actual = context.get(key)
    if operator == "StringEquals":
        return actual is not None and actual in [str(v) for v in _as_list(expected)]
    if operator == "StringNotEquals":
        return actual is None or actual not in [str(v) for v in _as_list(expected)]
    if operator == "StringLike":
        return actual is not None and _matches(expected, actual)
    if operator == "StringNotLike":
        return actual is None or not _matches(expected, actual)
    return False  # an operator this emulation does not know: fail closed


def admitted(policy: dict[str, Any], provider_arn: str, context: dict[str, str]) -> bool:
    allowed = False
    for statement in _as_list(policy.get("Statement", [])):
        actions = _as_list(statement.get("Action", []))
        if not any(fnmatch.fnmatchcase(ACTION.lower(), str(a).lower()) for a in actions):
            continue
        federated = (
            (statement.get("Principal") or {}).get("Federated")
            if isinstance(statement.get("Principal"), dict)
            else None
        )
        if provider_arn not in _as_list(federated):
            continue
        conditions = statement.get("Condition") or {}
        if all(
            condition_holds(operator, key, expected, context)
            for operator, pairs in conditions.items()
            for key, expected in pairs.items()
        ):
            if statement.get("Effect") == "Deny":
                return False
            allowed = True
    return allowed


def check(response) -> None:
    role_arn = response._get_param("RoleArn")
    claims = claims_of(response._get_param("WebIdentityToken"))
    issuer = str(claims.get("iss", "")).removeprefix("https://")
    subject = str(claims.get("sub", ""))
    denied = AccessDeniedError(user_arn=f"web identity {issuer}:{subject}", action=ACTION)
    partition = get_partition(response.region)
    backend = iam_backends[response.current_account][partition]
    provider_arn = f"arn:{partition}:iam::{response.current_account}:oidc-provider/{issuer}"
    provider = backend.open_id_providers.get(provider_arn)
    audiences = [str(a) for a in _as_list(claims.get("aud", []))]
    if not issuer or provider is None or not set(audiences) & set(provider.client_id_list):
        raise denied
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto's NotFoundException: no such role is denied, as in AWS
        raise denied from None
    context = {f"{issuer}:{k}": str(v) for k, v in claims.items() if isinstance(v, (str, int))}
    context[f"{issuer}:aud"] = audiences[0] if audiences else ""
    if not admitted(json.loads(role.assume_role_policy_document), provider_arn, context):
        raise denied


def apply() -> None:
    original = TokenResponse.assume_role_with_web_identity

    def assume_role_with_web_identity(self):
        check(self)
        return original(self)

    TokenResponse.assume_role_with_web_identity = assume_role_with_web_identity
