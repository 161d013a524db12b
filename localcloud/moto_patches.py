"""Where the emulator deviates from AWS, the local cloud corrects it here, and only here.

Each fix lives in a small module under ``localcloud/patches/`` with an ``apply()`` and a docstring
naming the AWS behaviour it restores. The roles and playbooks never know they run against the
emulator: they see an API that behaves the way AWS does. ``docs/local-cloud.md`` lists them.
"""

from __future__ import annotations

import importlib
import pkgutil

from localcloud import patches

_applied: list[str] = []


def apply() -> list[str]:
    """Apply every patch module once (idempotent); return their names."""
    if not _applied:
        for info in sorted(pkgutil.iter_modules(patches.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{patches.__name__}.{info.name}")
            module.apply()
            _applied.append(info.name)
    return list(_applied)
