# Copyright: Contributors to the ecs_production.platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pieces every module of the collection shares: the clock they wait with and the refusal they raise."""

import time
from datetime import datetime
from datetime import timezone

UTC = timezone.utc  # noqa: UP017 - datetime.UTC is Python 3.11+, modules run on 3.8+


class Clock:
    """Wall time for timestamps, monotonic time and sleep for waiting. Tests replace it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Refused(Exception):
    """The module cannot or must not do what it was asked; nothing was changed. ``result`` holds what it
    found, returned with the failure."""

    def __init__(self, message: str = "", **result):
        super().__init__(message)
        self.message = message
        self.result = result
