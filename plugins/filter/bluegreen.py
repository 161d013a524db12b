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


def bluegreen_state_after(state, switched=None, test_switched=None, retired=None):
    """The state a swap or rollback left: the state read before it, with the weights and health that
    traffic_switch returned (``switched``: the production listener's switch; ``test_switched``: the test
    listener's), the record it wrote, a retired colour's desired count of 0, and the lock released."""
    state = _state(state, "bluegreen_state_after")
    for name, result in (("switched", switched), ("test_switched", test_switched)):
        if result is not None and not isinstance(result, dict):
            raise AnsibleFilterError(f"bluegreen_state_after: {name} must be a traffic_switch result (a dict)")
    if retired is not None and retired not in state["colors"]:
        raise AnsibleFilterError(f"bluegreen_state_after: retired must be one of {', '.join(state['colors'])}")

    def returned(result, key):
        # A skipped task (no switch to make) registers no weights: the state keeps what it read.
        return (result or {}).get(key) if not (result or {}).get("skipped") else None

    return bg.state_after_switch(
        state,
        weights=returned(switched, "after"),
        test_weights=returned(test_switched, "after"),
        health=returned(switched, "health"),
        record=returned(switched, "record"),
        desired={retired: 0} if retired else None,
        lock=None,
    )


class FilterModule:
    def filters(self):
        return {
            "bluegreen_status_lines": bluegreen_status_lines,
            "bluegreen_deploy_size": bluegreen_deploy_size,
            "bluegreen_traffic_lines": bluegreen_traffic_lines,
            "bluegreen_steps_to_take": bluegreen_steps_to_take,
            "bluegreen_state_after": bluegreen_state_after,
        }
