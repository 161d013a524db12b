"""What the end-to-end tests read off a local cloud beyond what ``localcloud.harness`` offers: a
keep-alive client, the processes and ports a cloud holds, and a snapshot of everything a blue/green
operation could change."""

from __future__ import annotations

import os
from pathlib import Path

from localcloud.harness import ENVIRONMENT, PREFIX, PROJECT, UNVERIFIED, LocalCloud


class Client:
    """One keep-alive connection to a listener (``https://...`` or ``http://...``), reconnecting
    after an error: cheap enough for a thousand requests without a TLS handshake each."""

    def __init__(self, base_url: str, timeout: float = 10):
        import urllib.parse

        parts = urllib.parse.urlsplit(base_url)
        self.scheme, self.host, self.port, self.timeout = parts.scheme, parts.hostname, parts.port, timeout
        self._connection = None

    def request(
        self, method: str, path: str, headers: dict | None = None, body: bytes | None = None
    ) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body); connection errors raise OSError or
        http.client.HTTPException (after which the next request opens a new connection)."""
        import http.client

        if self._connection is None:
            if self.scheme == "https":
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=UNVERIFIED
                )
            else:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._connection.request(method, path, body=body, headers=headers or {})
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return self.request("GET", path, headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def processes_of(state_dir: Path) -> list[int]:
    """Live processes that belong to the local cloud of ``state_dir``: ``LOCALCLOUD_OWNER=<state
    dir>`` in their environment, or the state dir on their command line (zombies excluded)."""
    from localcloud.dataplane.ecs import OWNER_ENV
    from localcloud.procs import live_processes

    marker = f"{OWNER_ENV}={state_dir}".encode()
    return live_processes(lambda variables, command: marker in variables or str(state_dir).encode() in command)


def refuses(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when nothing accepts a TCP connection on host:port."""
    from localcloud.cli import port_open

    return not port_open(host, port, timeout)


def listening_pids(host: str, port: int) -> set[int]:
    """Processes holding a listening TCP socket on host:port (IPv4), from /proc/net/tcp."""
    import socket
    import struct

    wanted = f"{struct.unpack('<I', socket.inet_aton(host))[0]:08X}:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for entry in os.listdir("/proc") if inodes else ():
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    pids.add(int(entry))
                    break
        except OSError:
            continue
    return pids


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]  # field 22 of stat: the start time


def process_tree(pids: list[int]) -> dict[int, str]:
    """``pids`` and all their descendants, as {pid: start time}: PostgreSQL's children rewrite their
    environment (the process title), so they carry no visible owner marker of their own."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: dict[int, str] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if pid in found or started is None:
            continue
        found[pid] = started
        todo += children.get(pid, [])
    return found


def still_running(tree: dict[int, str]) -> list[int]:
    """The processes of a :func:`process_tree` snapshot that still run (same pid, same start time)."""
    return sorted(pid for pid, started in tree.items() if _start_time(pid) == started)


def snapshot(cloud: LocalCloud) -> dict:
    """What a blue/green operation could change, read through the API: every listener's default
    actions and tags (the swap's record), the services' task definitions, desired counts and
    deployments, the registered task definitions, the cluster's tags, the alarms' states, the SSM
    parameters (with their versions) and the images. Counts of running tasks and events are left
    out (the data plane moves them)."""
    prefix = PREFIX
    elbv2, ecs, cw, ssm, ecr = (cloud.client(s) for s in ("elbv2", "ecs", "cloudwatch", "ssm", "ecr"))
    lb = elbv2.describe_load_balancers(Names=[f"{prefix}-alb"])["LoadBalancers"][0]
    described = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    listeners = {li["Port"]: li["DefaultActions"] for li in described}
    listener_tags = {
        d["ResourceArn"]: sorted((t["Key"], t["Value"]) for t in d["Tags"])
        for d in elbv2.describe_tags(ResourceArns=[li["ListenerArn"] for li in described])["TagDescriptions"]
    }
    services = {
        s["serviceName"]: {
            "taskDefinition": s["taskDefinition"],
            "desiredCount": s["desiredCount"],
            "deployments": sorted(d["id"] for d in s.get("deployments", [])),
        }
        for s in ecs.describe_services(cluster=prefix, services=[f"{prefix}-blue", f"{prefix}-green"])["services"]
    }
    cluster = ecs.describe_clusters(clusters=[prefix])["clusters"][0]
    parameters = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=f"/{PROJECT}/{ENVIRONMENT}", Recursive=True):
        parameters.update({p["Name"]: p["Version"] for p in page["Parameters"]})
    return {
        "listeners": listeners,
        "listener_tags": {li["Port"]: listener_tags.get(li["ListenerArn"], []) for li in described},
        "services": services,
        "task_definitions": sorted(ecs.list_task_definitions()["taskDefinitionArns"]),
        "cluster_tags": sorted(
            (t["key"], t["value"]) for t in ecs.list_tags_for_resource(resourceArn=cluster["clusterArn"])["tags"]
        ),
        "alarms": {a["AlarmName"]: a["StateValue"] for a in cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]},
        "parameters": parameters,
        "images": sorted(i.get("imageTag", "") for i in ecr.list_images(repositoryName=prefix)["imageIds"]),
    }
