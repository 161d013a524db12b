"""GitHub-shaped OIDC tokens for AssumeRoleWithWebIdentity against the local cloud.

The local cloud reads a token's claims, not its signature (``localcloud/patches/sts_web_identity_trust.py``
says why), so a test makes its own unsigned token with the claims it wants: the ones GitHub Actions puts
in the token of a workflow job, which a role's trust policy checks as ``<issuer host>:<claim>``.
"""

from __future__ import annotations

import base64
import json

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def _part(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def github_token(subject: str, audience: str = "sts.amazonaws.com", issuer: str = GITHUB_ISSUER) -> str:
    """An unsigned JWT with GitHub's claims: ``iss``, ``sub`` (``repo:OWNER/REPO:environment:ENV`` or
    ``repo:OWNER/REPO:ref:REF``), ``aud``, and the ``repository`` and ``environment`` GitHub derives from
    the same job (read here from ``subject``)."""
    claims: dict[str, str] = {"iss": issuer, "sub": subject, "aud": audience}
    fields = subject.split(":")
    if len(fields) >= 2 and fields[0] == "repo":
        claims["repository"] = fields[1]
    if len(fields) >= 4 and fields[2] == "environment":
        claims["environment"] = ":".join(fields[3:])
    return f"{_part({'alg': 'RS256', 'typ': 'JWT'})}.{_part(claims)}.c2lnbmF0dXJl"
