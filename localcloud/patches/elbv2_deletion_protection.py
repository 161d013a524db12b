"""A load balancer with deletion protection on cannot be deleted: AWS answers OperationNotPermitted.
moto deletes it anyway, so a teardown that forgets to turn the protection off first would pass
here and fail on AWS."""

from __future__ import annotations

from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import ELBv2Backend


class OperationNotPermittedError(ELBClientError):
    def __init__(self, arn: str) -> None:
        super().__init__(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )


def apply() -> None:
    delete = ELBv2Backend.delete_load_balancer

    def delete_unless_protected(self, arn: str) -> None:
        balancer = self.load_balancers.get(arn)
        if balancer is not None and str(balancer.attrs.get("deletion_protection.enabled", "false")).lower() == "true":
            raise OperationNotPermittedError(arn)
        delete(self, arn)

    ELBv2Backend.delete_load_balancer = delete_unless_protected
