# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: fast_linear
short_description: the linear strategy, run through Mitogen where it is installed
description:
  - Runs the play as C(ansible.builtin.linear) does, task by task on every host.
  - Where the C(mitogen) Python package is importable and supports this ansible-core, the tasks run through
    Mitogen's connection multiplexer (C(mitogen_linear)) - modules execute in a long-lived interpreter, so a task
    does not pay for a new Python process and a fresh C(import boto3). A no-op provision run of this collection's
    platform takes about half the time.
  - Where Mitogen is missing or refuses this ansible-core, the plain C(ansible.builtin.linear) strategy runs,
    with one warning.
  - Turn Mitogen off for a run with C(ANSIBLE_STRATEGY=linear), or for good by removing C(strategy) from ansible.cfg.
author: ecs_production.platform contributors (@ecs-production)
"""

from ansible.utils.display import Display

display = Display()

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy

    ansible_mitogen.loaders.assert_supported_release()
except Exception as exc:  # noqa: BLE001 - any failure to load Mitogen means: run the plain strategy
    from ansible.plugins.strategy.linear import StrategyModule as _Base

    _WHY_NOT = f"{exc.__class__.__name__}: {exc}"

    class StrategyModule(_Base):
        """ansible.builtin.linear, saying once why Mitogen does not run."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            display.warning(f"Mitogen is not usable here ({_WHY_NOT}); running the plain linear strategy.")

else:
    _Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Base):
        """mitogen_linear: ansible.builtin.linear with Mitogen's connections."""
