"""RDS DescribeDBEngineVersions, which moto does not implement (HTTP 500), answered from a small
catalogue shaped like AWS's: the platform pins a major version and resolves its default minor at
run time (EngineVersion "15" with DefaultOnly). Versions here are illustrative, not AWS's list."""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.rds.responses import RDSResponse

# engine -> major -> minors, oldest first; the newest is the default, as on AWS.
CATALOGUE = {
    "postgres": {
        "13": ["13.18", "13.20"],
        "14": ["14.15", "14.17"],
        "15": ["15.10", "15.12"],
        "16": ["16.6", "16.8"],
        "17": ["17.2", "17.4"],
    },
}


def _versions(engine: str | None, version: str | None, default_only: bool) -> list[dict]:
    found = []
    for name, majors in CATALOGUE.items():
        if engine and engine != name:
            continue
        for major, minors in majors.items():
            for minor in minors:
                if version and not (minor == version or minor.startswith(version + ".")):
                    continue
                is_default = minor == minors[-1]
                if default_only and not is_default:
                    continue
                found.append(
                    {
                        "Engine": name,
                        "EngineVersion": minor,
                        "DBParameterGroupFamily": f"{name}{major}",
                        "DBEngineDescription": "PostgreSQL",
                        "DBEngineVersionDescription": f"PostgreSQL {minor}",
                        "Status": "available",
                        "SupportsReadReplica": True,
                    }
                )
    return found


def describe_db_engine_versions(self) -> ActionResult:
    default_only = str(self.params.get("DefaultOnly", "false")).lower() == "true"
    versions = _versions(self.params.get("Engine"), self.params.get("EngineVersion"), default_only)
    return ActionResult({"DBEngineVersions": versions})


def apply() -> None:
    RDSResponse.describe_db_engine_versions = describe_db_engine_versions
