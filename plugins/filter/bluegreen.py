# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over the blue/green state that bluegreen_info returns; the decisions live in module_utils/bluegreen.py
(shared with the module), so that the playbooks hold no multi-line Jinja."""

from ansible.errors import AnsibleFilterError

from ansible_collections.ecs_production.platform.plugins.module_utils import bluegreen as bg


def _state(state, name):
    if not isinstance(state, dict) or "colors" not in state or "active" not in state:
        raise AnsibleFilterError(f"{name}: give it the state bluegreen_info returns (its 'state' key)")
    return state


def bluegreen_status_lines(state, name_prefix=""):
    """The status table, one line per item: colours, alarms, the last swap, the lock."""
    return bg.status_lines(_state(state, "bluegreen_status_lines"), name_prefix)


def bluegreen_traffic_lines(state):
    """Two summary lines: the production listener's weights and each colour's desired count ("none" without a
    state, as when the load balancer does not exist yet)."""
    return bg.traffic_lines(_state(state, "bluegreen_traffic_lines") if state else None)


def bluegreen_deploy_size(state):
    """How many tasks a deploy starts on the idle colour: as many as the active colour wants, at least one."""
    return bg.deploy_size(_state(state, "bluegreen_deploy_size"))


def bluegreen_steps_to_take(steps, current_weight):
    """The canary steps above the colour's current weight."""
    try:
        return bg.steps_to_take(steps, int(current_weight))
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError(f"bluegreen_steps_to_take: steps and weight must be integers ({e})") from e


class FilterModule:
    def filters(self):
        return {
            "bluegreen_status_lines": bluegreen_status_lines,
            "bluegreen_deploy_size": bluegreen_deploy_size,
            "bluegreen_traffic_lines": bluegreen_traffic_lines,
            "bluegreen_steps_to_take": bluegreen_steps_to_take,
        }
