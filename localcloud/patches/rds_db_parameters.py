"""RDS DescribeDBParameters answers a PostgreSQL family's parameters, not only the ones set: each with
its DataType, AllowedValues, IsModifiable, ApplyType and Source, as AWS does. moto lists only the
parameters a ModifyDBParameterGroup set, without their types, and amazon.aws.rds_instance_param_group
then refuses every parameter ("not an available parameter"). A catalogue of the parameters the
platform sets (and a few neighbours), shaped like AWS's; an engine default carries no ParameterValue.
Values set by ModifyDBParameterGroup are listed with Source "user". ``Source`` filters as on AWS.

DescribeDBParameterGroups of a name that does not exist answers DBParameterGroupNotFound, as AWS does;
moto answers an empty list, on which amazon.aws.rds_instance_param_group fails (IndexError)."""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.rds.exceptions import DBParameterGroupNotFoundError
from moto.rds.responses import RDSResponse

# name -> (DataType, AllowedValues, ApplyType, Description)
POSTGRES_PARAMETERS = {
    "rds.force_ssl": ("boolean", "0,1", "dynamic", "Force SSL connections."),
    "log_min_duration_statement": (
        "integer",
        "-1-2147483647",
        "dynamic",
        "Sets the minimum execution time above which statements will be logged.",
    ),
    "log_connections": ("boolean", "0,1", "dynamic", "Logs each successful connection."),
    "log_disconnections": ("boolean", "0,1", "dynamic", "Logs end of a session, including duration."),
    "log_statement": ("string", "none,ddl,mod,all", "dynamic", "Sets the type of statements logged."),
    "shared_preload_libraries": ("list", "pg_stat_statements,pg_cron", "static", "Lists shared libraries to preload."),
}


def _catalogue(family: str | None) -> list[dict]:
    if not (family or "").startswith("postgres"):
        return []
    return [
        {
            "ParameterName": name,
            "Description": description,
            "Source": "engine-default",
            "ApplyType": apply_type,
            "DataType": data_type,
            "AllowedValues": allowed,
            "IsModifiable": True,
            "ApplyMethod": "pending-reboot",
        }
        for name, (data_type, allowed, apply_type, description) in POSTGRES_PARAMETERS.items()
    ]


def describe_db_parameters(self) -> ActionResult:
    name = self.params.get("DBParameterGroupName")
    groups = self.backend.describe_db_parameter_groups({"db_parameter_group_name": name})
    if not groups:
        raise DBParameterGroupNotFoundError(name)
    group = groups[0]
    listed = {p["ParameterName"]: p for p in _catalogue(group.family)}
    for parameter_name, parameter in group.parameters.items():
        listed[parameter_name] = {**listed.get(parameter_name, {}), **parameter, "Source": "user"}
    source = self.params.get("Source")
    parameters = [p for p in listed.values() if not source or p.get("Source") == source]
    return ActionResult({"Parameters": sorted(parameters, key=lambda p: p["ParameterName"])})


def apply() -> None:
    describe_groups = RDSResponse.describe_db_parameter_groups

    def describe_db_parameter_groups(self):
        name = self.params.get("DBParameterGroupName")
        if name and not self.backend.describe_db_parameter_groups({"db_parameter_group_name": name}):
            raise DBParameterGroupNotFoundError(name)
        return describe_groups(self)

    RDSResponse.describe_db_parameter_groups = describe_db_parameter_groups
    RDSResponse.describe_db_parameters = describe_db_parameters
