"""The database password, read from SSM Parameter Store and re-read when the database rejects it.

boto3 finds the task role's credentials itself (the ECS container credentials endpoint on Fargate)
and honours ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_SSM``, which is how the local cloud points it
at its own AWS API. The password is kept in memory only: never logged, never in ``repr``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .config import StartupError

log = logging.getLogger(__name__)


class CredentialsError(StartupError):
    """The password could not be read from SSM (the message names the parameter, never a value)."""


def ssm_password_reader(parameter: str, region: str) -> Callable[[], str]:
    """A function that reads ``parameter`` from SSM with decryption.

    Each read makes its own session and client: reads are rare (start-up, then once per rotation),
    and gunicorn forks workers after the first one, so nothing network-bound may be shared.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 5, "mode": "standard"})

    def read() -> str:
        try:
            client = boto3.session.Session().client("ssm", region_name=region, config=config)
            response = client.get_parameter(Name=parameter, WithDecryption=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise CredentialsError(f"cannot read SSM parameter {parameter}: {code}") from None
        except BotoCoreError as exc:
            raise CredentialsError(f"cannot read SSM parameter {parameter}: {type(exc).__name__}: {exc}") from None
        value = response["Parameter"].get("Value", "")
        if not value:
            raise CredentialsError(f"SSM parameter {parameter} is empty")
        return value

    return read


class Credentials:
    """The current password and a way to refresh it.

    :meth:`refresh` fetches again only if nobody has since the caller last looked, so a burst of
    connections failing at once after a rotation costs one SSM call, not one each.
    """

    def __init__(self, reader: Callable[[], str]):
        self._reader = reader
        self._lock = threading.Lock()
        self._password = reader()
        self._generation = 0
        self.fetches = 1

    def __repr__(self) -> str:
        return f"<Credentials generation={self._generation}>"

    def current(self) -> tuple[str, int]:
        """The password and its generation (which :meth:`refresh` compares)."""
        with self._lock:
            return self._password, self._generation

    def refresh(self, seen_generation: int) -> bool:
        """Re-read the password unless a newer one than ``seen_generation`` is already held.

        Return whether the password now differs from the one the caller used.
        """
        with self._lock:
            if self._generation != seen_generation:
                return True
            password = self._reader()
            self.fetches += 1
            changed = password != self._password
            self._password = password
            self._generation += 1
            log.warning("database password re-read from SSM (%s)", "changed" if changed else "unchanged")
            return changed
