# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from ansible.errors import AnsibleFilterError


def forwarded_target_groups(load_balancer, port=443):
    """The target groups the listener on ``port`` forwards to, as [{target_group_arn, target_group_name}], from a
    load balancer as amazon.aws.elb_application_lb_info returns it (listeners included)."""
    if not isinstance(load_balancer, dict):
        raise AnsibleFilterError("forwarded_target_groups: give it one load balancer of elb_application_lb_info")
    found = []
    for listener in load_balancer.get("listeners") or []:
        if listener.get("port") != int(port):
            continue
        for action in listener.get("default_actions") or []:
            if action.get("type") != "forward":
                continue
            groups = (action.get("forward_config") or {}).get("target_groups") or []
            arns = [group.get("target_group_arn") for group in groups] or [action.get("target_group_arn")]
            for arn in arns:
                if arn and arn not in [f["target_group_arn"] for f in found]:
                    # arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID
                    found.append({"target_group_arn": arn, "target_group_name": arn.rsplit(":", 1)[-1].split("/")[1]})
    return found


class FilterModule:
    def filters(self):
        return {"forwarded_target_groups": forwarded_target_groups}
