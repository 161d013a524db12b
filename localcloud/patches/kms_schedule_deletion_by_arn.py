"""KMS ScheduleKeyDeletion/CancelKeyDeletion accept a key ARN as well as a key id (AWS does; moto
answers HTTP 500 for an ARN, which is what amazon.aws.kms_key passes when deleting a key)."""

from __future__ import annotations

from moto.kms.models import KmsBackend


def apply() -> None:
    schedule = KmsBackend.schedule_key_deletion
    cancel = KmsBackend.cancel_key_deletion

    def schedule_key_deletion(self, key_id: str, pending_window_in_days: int):
        return schedule(self, self.get_key_id(key_id), pending_window_in_days)

    def cancel_key_deletion(self, key_id: str):
        return cancel(self, self.get_key_id(key_id))

    KmsBackend.schedule_key_deletion = schedule_key_deletion
    KmsBackend.cancel_key_deletion = cancel_key_deletion
