"""KMS key operations accept a key ARN as well as a key id, as AWS does. moto answers HTTP 500 for an
ARN in ScheduleKeyDeletion, CancelKeyDeletion, EnableKey and DisableKey, which amazon.aws.kms_key
passes when it deletes a key or revives one pending deletion."""

from __future__ import annotations

import functools

from moto.kms.models import KmsBackend

OPERATIONS = ("schedule_key_deletion", "cancel_key_deletion", "enable_key", "disable_key")


def _by_key_id(operation):
    @functools.wraps(operation)
    def wrapper(self, key_id: str, *args, **kwargs):
        return operation(self, self.get_key_id(key_id), *args, **kwargs)

    return wrapper


def apply() -> None:
    for name in OPERATIONS:
        setattr(KmsBackend, name, _by_key_id(getattr(KmsBackend, name)))
