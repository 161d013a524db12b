# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import ipaddress

from ansible.errors import AnsibleFilterError


def overlapping_cidrs(cidrs):
    """The pairs of networks in cidrs that share addresses, as "a and b" strings, in input order."""
    if not isinstance(cidrs, (list, tuple)):
        raise AnsibleFilterError(f"overlapping_cidrs: expects a list of CIDRs, not {type(cidrs).__name__}")
    networks = []
    for cidr in cidrs:
        try:
            networks.append((cidr, ipaddress.ip_network(str(cidr), strict=False)))
        except ValueError as error:
            raise AnsibleFilterError(f"overlapping_cidrs: {cidr!r} is not a CIDR: {error}") from None
    found = []
    for index, (a, net_a) in enumerate(networks):
        for b, net_b in networks[index + 1 :]:
            if net_a.version == net_b.version and net_a.overlaps(net_b):
                found.append(f"{a} and {b}")
    return found


class FilterModule:
    def filters(self):
        return {"overlapping_cidrs": overlapping_cidrs}
