"""DB snapshots made real: a manual snapshot is a copy of the instance's PostgreSQL cluster.

On AWS a DB snapshot is a copy of the instance's storage, and ``RestoreDBInstanceFromDBSnapshot``
creates a new instance on a copy of it: every row, role and password of the database as it was
when the snapshot was taken. The data plane does the same with real files, under
``<state>/rds/snapshots/<region>/<snapshot>/``:

- ``CreateDBSnapshot`` of a running instance: ``pg_basebackup`` of the running server (a
  consistent copy, the server keeps serving; on RDS a Single-AZ instance's I/O pauses briefly);
- the final snapshot of ``DeleteDBInstance``, or a snapshot of a stopped instance: the server is
  (or stays) stopped, and its data directory is copied as it is;
- ``snapshot.json`` beside the copy, written last, says the copy is complete (and what it holds);
- ``RestoreDBInstanceFromDBSnapshot``: the new instance's cluster is a copy of the snapshot's,
  listening on the new instance's own address and port;
- ``DeleteDBSnapshot``: the copy is removed.

The snapshot is ``creating`` in the API until its copy is complete, then ``available`` (the patch
``localcloud.patches.rds_snapshots`` and :meth:`localcloud.dataplane.rds.MotoRdsMirror.snapshot_status`).
A snapshot with no copy (an automated one, or one taken while no data plane ran) cannot be restored
with its data: the restored instance is ``failed``, saying so. The master password of the copy is
the instance's at the time of the snapshot; the plane remembers it (in memory only) to administer
the restored server, whose password ``ModifyDBInstance`` can then change, as on RDS.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path

from localcloud.postgres import PostgresServer

log = logging.getLogger(__name__)

MARKER = "snapshot.json"


class SnapshotStore:
    """The copies of the DB snapshots, and the master password each holds (in memory)."""

    def __init__(self, rds_root: Path):
        self.root = Path(rds_root) / "snapshots"
        self._passwords: dict[tuple[str, str], str] = {}

    def directory(self, region: str, snapshot: str) -> Path:
        return self.root / region / snapshot

    def data(self, region: str, snapshot: str) -> Path:
        return self.directory(region, snapshot) / "data"

    def complete(self, region: str, snapshot: str) -> bool:
        return (self.directory(region, snapshot) / MARKER).exists()

    def password(self, region: str, snapshot: str) -> str | None:
        return self._passwords.get((region, snapshot))

    def take(self, region: str, snapshot: str, database, *, running: bool) -> None:
        """Copy ``database`` (a :class:`localcloud.dataplane.rds.LocalDatabase`) as ``snapshot``."""
        server: PostgresServer = database.server
        directory = self.directory(region, snapshot)
        shutil.rmtree(directory, ignore_errors=True)  # a copy that did not complete
        directory.mkdir(parents=True)
        _traversable(self.root, directory)
        if running:
            server.backup(directory / "data")
        else:
            server.copy_stopped(directory / "data")
        self._passwords[(region, snapshot)] = server.password
        facts = {
            "snapshot": snapshot,
            "instance": database.identifier,
            "db_name": database.db_name,
            "master_username": database.master_username,
            "engine_version": database.engine_version,
            "method": "pg_basebackup" if running else "copy of the stopped cluster",
            "copied_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (directory / MARKER).write_text(json.dumps(facts, indent=1) + "\n")
        log.info("snapshot %s of %s copied (%s)", snapshot, database.identifier, facts["method"])

    def copies(self) -> list[dict]:
        """Every complete copy: what its ``snapshot.json`` says, with its region."""
        found = []
        for marker in sorted(self.root.glob(f"*/*/{MARKER}")):
            facts = json.loads(marker.read_text())
            found.append({"region": marker.parent.parent.name, **facts, "data_dir": str(marker.parent / "data")})
        return found

    def prune(self, region: str, existing: set[str]) -> None:
        """Remove the copies of the snapshots of ``region`` that the API no longer has."""
        for directory in sorted((self.root / region).glob("*")) if (self.root / region).is_dir() else []:
            if directory.name not in existing:
                shutil.rmtree(directory, ignore_errors=True)
                self._passwords.pop((region, directory.name), None)
                log.info("snapshot %s deleted: its copy is removed", directory.name)


def _traversable(root: Path, directory: Path) -> None:
    """As root, PostgreSQL's user must pass through the directories down to the copy."""
    import os

    if os.geteuid() != 0:
        return
    path = directory
    while True:
        path.chmod(path.stat().st_mode | 0o111)
        if path in (root.parent, path.parent):
            break
        path = path.parent
