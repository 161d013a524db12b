# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a provision would change on an existing RDS instance that hurts, read from one describe.

The rds role compares the instance that amazon.aws.rds_instance_info returned with what the inventory wants,
before it calls amazon.aws.rds_instance (or writes the password or the DB subnet group): a change of the
instance class, the storage (size, type, IOPS), the engine's major version or Multi-AZ, the move of the
database to other subnets, or a new master password needs the operator's consent first.
"""

from ansible.errors import AnsibleFilterError

CONSENT = "-e platform_allow_disruptive=true"


def _current(instance, key):
    """The value RDS will have once what is pending is applied (what rds_instance compares with, too)."""
    pending = instance.get("pending_modified_values") or {}
    return pending.get(key, instance.get(key))


def _major(version):
    return str(version or "").split(".", maxsplit=1)[0]


def _subnets(instance):
    group = instance.get("db_subnet_group") or {}
    return sorted(subnet.get("subnet_identifier", "") for subnet in group.get("subnets") or [])


def _int(value, name):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"rds_change_plan: wanted {name} must be a whole number, not {value!r}") from None


def _bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise AnsibleFilterError(f"rds_change_plan: wanted {name} must be a boolean, not {value!r}")


def _change(attribute, current, wanted, effect, consentable=True):
    return {"attribute": attribute, "current": current, "wanted": wanted, "effect": effect, "consentable": consentable}


def _class_change(instance, wanted):
    current, asked = _current(instance, "db_instance_class"), wanted.get("instance_class")
    if asked and current != asked:
        return [
            _change(
                "instance class",
                current,
                asked,
                "RDS moves the database to the new class: it is unavailable for minutes (Multi-AZ: a failover)",
            )
        ]
    return []


def _storage_changes(instance, wanted, plan):
    changes = []
    current_size = _int(_current(instance, "allocated_storage"), "current allocated_storage")
    wanted_size = _int(wanted.get("allocated_storage"), "allocated_storage")
    plan["allocated_storage"] = max(current_size, wanted_size)
    if wanted_size > current_size:
        changes.append(
            _change(
                "allocated storage (GiB)",
                current_size,
                wanted_size,
                "storage grows and can never shrink back; I/O may be slower while RDS optimizes it, and no other"
                " storage change is possible for 6 hours",
            )
        )
    elif wanted_size < current_size:
        plan["notes"].append(
            f"allocated storage stays at {current_size} GiB, not {wanted_size}: RDS storage only grows"
            " (storage autoscaling or an earlier change raised it)"
        )
    current_type, wanted_type = _current(instance, "storage_type"), wanted.get("storage_type")
    if wanted_type and current_type != wanted_type:
        changes.append(
            _change(
                "storage type",
                current_type,
                wanted_type,
                "RDS converts the storage: I/O is degraded while it does, which can take hours",
            )
        )
    if wanted.get("iops") not in (None, "", 0):
        current_iops, wanted_iops = _current(instance, "iops"), _int(wanted["iops"], "iops")
        if current_iops != wanted_iops:
            changes.append(
                _change(
                    "provisioned IOPS",
                    current_iops,
                    wanted_iops,
                    "RDS changes the storage's performance: I/O is degraded while it does",
                )
            )
    return changes


def _availability_changes(instance, wanted):
    changes = []
    current_multi_az = bool(_current(instance, "multi_az"))
    wanted_multi_az = _bool(wanted.get("multi_az", current_multi_az), "multi_az")
    if current_multi_az != wanted_multi_az:
        effect = (
            "RDS builds a standby in another zone from a snapshot: I/O latency rises while it syncs"
            if wanted_multi_az
            else "RDS removes the standby: no failover any more when the zone or the host fails"
        )
        changes.append(_change("Multi-AZ", current_multi_az, wanted_multi_az, effect))
    current_version = str(instance.get("engine_version") or "")
    wanted_major = str(wanted.get("engine_major_version") or "")
    if wanted_major and _major(current_version) != wanted_major:
        changes.append(
            _change(
                "engine version",
                current_version,
                f"{wanted_major}.x",
                "a major version change is not made by provision, even with consent: it is a deliberate,"
                " irreversible operation with downtime (docs/runbooks/database.md)",
                consentable=False,
            )
        )
    return changes


def _placement_and_secret_changes(instance, wanted, plan):
    changes = []
    wanted_subnets = sorted(str(subnet) for subnet in wanted.get("subnet_ids") or [])
    current_subnets = _subnets(instance)
    if wanted_subnets and current_subnets and current_subnets != wanted_subnets:
        changes.append(
            _change(
                "DB subnet group subnets",
                current_subnets,
                wanted_subnets,
                "the database's subnet group is rewritten: RDS fails the change if the instance lives in a subnet"
                " that goes, and a failover or a new standby lands in the new subnets",
            )
        )
    if _bool(wanted.get("password_regenerated", False), "password_regenerated"):
        changes.append(
            _change(
                "master password",
                "the value in SSM (missing)",
                "a new random value",
                "the password parameter is gone: provision generates a new password and sets it on the running"
                " database, so connections with the old one are refused from then on",
            )
        )
    current_key, wanted_key = instance.get("kms_key_id"), wanted.get("kms_key_id")
    if current_key and wanted_key and current_key != wanted_key:
        plan["notes"].append(
            f"the database is encrypted with {current_key}, not the environment's key {wanted_key}: provision"
            " cannot change an instance's key (that takes a snapshot copy and a restore) and leaves it; never"
            " delete the instance's key while the instance or its snapshots exist"
        )
    return changes


def rds_change_plan(instance, wanted):
    """The disruptive changes a provision would make to ``instance`` (rds_instance_info's, snake_case) to reach
    ``wanted``, the diff of those attributes, notes on differences provision leaves alone, and the storage
    size to ask for (RDS storage only grows: a size that autoscaling or a person raised is kept)."""
    if not isinstance(wanted, dict):
        raise AnsibleFilterError("rds_change_plan: wanted must be a dict of the wanted settings")
    plan = {"changes": [], "before": {}, "after": {}, "notes": [], "allocated_storage": None}
    if not instance:
        plan["allocated_storage"] = _int(wanted.get("allocated_storage"), "allocated_storage")
        return plan
    if not isinstance(instance, dict):
        raise AnsibleFilterError("rds_change_plan: give it one instance as amazon.aws.rds_instance_info returns it")
    plan["changes"] = (
        _class_change(instance, wanted)
        + _storage_changes(instance, wanted, plan)
        + _availability_changes(instance, wanted)
        + _placement_and_secret_changes(instance, wanted, plan)
    )
    for change in plan["changes"]:
        plan["before"][change["attribute"]] = change["current"]
        plan["after"][change["attribute"]] = change["wanted"]
    return plan


def rds_change_lines(plan):
    """One line per change of a plan from rds_change_plan: 'attribute: current -> wanted', then the effect."""
    if not isinstance(plan, dict) or "changes" not in plan:
        raise AnsibleFilterError("rds_change_lines: give it what rds_change_plan returns")
    lines = []
    for change in plan["changes"]:
        current, wanted = change["current"], change["wanted"]
        if isinstance(current, list):
            current, wanted = ", ".join(current) or "none", ", ".join(wanted) or "none"
        lines.append(f"{change['attribute']}: {current} -> {wanted} ({change['effect']})")
    return lines


class FilterModule:
    def filters(self):
        return {"rds_change_plan": rds_change_plan, "rds_change_lines": rds_change_lines}
