"""The data plane's controller: one loop that makes the local AWS API's state real.

It runs inside the local AWS API's process (``python -m localcloud.awsapi --data-plane``), next
to the emulator, and reads the state like any client does, through boto3 against the API's own
endpoint (its requests carry the ``localcloud-dataplane`` user agent, which the API leaves out of
its request log). Every ``tick`` (0.5 s) it reconciles RDS (databases first, so that their names
resolve before tasks start), then ECS; the load balancer plane follows the listeners by itself.
Emulator internals are used only where the API cannot express what the data plane must do: the
RDS master password (``rds.moto_master_password``), reflecting the RDS engines' restarts
(``rds.MotoRdsMirror``) and the tasks it runs (``ecs.MotoEcsMirror``) into the emulator's
backends. It rewrites ``<state>/status.json`` every second: what
``localcloud status`` prints.

The load balancer publishes its AWS/ApplicationELB metrics to the API's CloudWatch
(``lb.metrics``, off with ``LOCALCLOUD_LB_METRICS=0``), and a thread evaluates the account's metric
alarms as CloudWatch does (``alarms``, off with ``alarms=False``). Every couple of seconds the loop
runs the ECS services' Application Auto Scaling target tracking policies (``scaling``, off with
``LOCALCLOUD_SCALING=0``), which change the services' desired counts as AWS would.

Everything it starts carries ``LOCALCLOUD_OWNER=<state dir>`` in its environment (tasks and
health checks get it from the plane, PostgreSQL inherits it from the process, which ``localcloud
up`` starts with it), which is how ``localcloud down`` finds anything left behind by a crash.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from localcloud.awsapi import DATA_PLANE_AGENT
from localcloud.dataplane import alarms, ecs, logs, rds
from localcloud.dataplane.ecs.usage import UsagePublisher
from localcloud.dataplane.registry import TargetRegistry
from localcloud.dataplane.scaling import ServiceScaler
from localcloud.dataplane.scaling import enabled_by_env as scaling_enabled_by_env

USAGE_INTERVAL = 5.0  # seconds between two samples of the tasks' CPU and memory (AWS/ECS metrics)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
STATUS_FILE = "status.json"
DEFAULT_ACCOUNT_ID = "123456789012"


class ApiClients:
    """boto3 clients of the local AWS API, one per (service, region), shared by the planes' threads."""

    def __init__(self, endpoint_url: str):
        import boto3
        from botocore.config import Config

        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
        self._config = Config(
            user_agent_extra=DATA_PLANE_AGENT,
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=2,
            read_timeout=30,
        )
        self._clients: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str):
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self._config
                )
            return self._clients[key]


class DataPlane:
    """ECS tasks, RDS databases, logs and the load balancer of one local cloud.

    ``load_balancer`` starts the load balancer plane and the API target sync (the other half of
    the data plane); tests of the task runner turn it off and decide target health themselves.
    ``emulator_in_process`` says the emulator runs in this process (the master password and the
    ECS reflection need it). ``metrics`` turns the load balancer's metrics on or off (default:
    on unless ``LOCALCLOUD_LB_METRICS=0``); ``alarms`` the evaluation of metric alarms; ``scaling``
    the ECS services' target tracking (default: on unless ``LOCALCLOUD_SCALING=0``).
    """

    def __init__(
        self,
        endpoint_url: str,
        state_dir: Path,
        *,
        regions: Iterable[str] = ("us-east-1",),
        account_id: str = DEFAULT_ACCOUNT_ID,
        port_map: dict[int, int] | None = None,
        load_balancer: bool = True,
        emulator_in_process: bool = True,
        tick: float = 0.5,
        app_dir: Path = REPO / "app",
        python: str = sys.executable,
        backoff: tuple[float, float] = (2.0, 60.0),
        registry: TargetRegistry | None = None,
        metrics: bool | None = None,
        alarms: bool = True,
        scaling: bool | None = None,
    ):
        self.endpoint_url = endpoint_url
        self.state_dir = Path(state_dir).resolve()
        self.configured_regions = list(dict.fromkeys(regions))
        self.account_id = account_id
        self.port_map = port_map  # None: the load balancer's default, 80 -> 8080 and 443 -> 8443
        self.tick = tick
        self.emulator_in_process = emulator_in_process
        self.load_balancer = load_balancer
        self.app_dir = Path(app_dir)
        self.python = python
        self.backoff = backoff
        self.registry = registry or TargetRegistry()
        self.clients = ApiClients(endpoint_url)
        self.lb = None
        self.api_sync = None
        self.lb_error: str | None = None
        self.metrics_enabled = metrics
        self.alarms_enabled = alarms
        self.lb_metrics = None
        self.alarm_evaluator: alarms.AlarmEvaluator | None = None
        self.tls_cert: tuple[str, str] | None = None
        self.ecs: ecs.EcsPlane | None = None
        self.rds: rds.RdsPlane | None = None
        self.shipper: logs.LogShipper | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "starting"
        self._next_status = 0.0
        self.usage: UsagePublisher | None = None
        self._next_usage = 0.0
        self.scaling_enabled = scaling
        self.scaling: ServiceScaler | None = None
        self._next_scaling = 0.0

    @property
    def hosts_file(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def status_file(self) -> Path:
        return self.state_dir / STATUS_FILE

    def regions(self) -> list[str]:
        """The configured regions, and any other the emulator holds ECS or RDS state in."""
        found = list(self.configured_regions)
        if self.emulator_in_process:
            from moto.ecs.models import ecs_backends
            from moto.rds.models import rds_backends

            for backends in (ecs_backends, rds_backends):
                for region in list(dict.keys(backends[self.account_id])):
                    if region not in found and region != "global":
                        found.append(region)
        return found

    def _scaled_regions(self) -> list[str]:
        """The regions where the ECS plane has services (where there is something to scale)."""
        services = list(self.ecs.services.values()) if self.ecs else []
        return sorted({state.region for state in services if not state.gone})

    def elbv2(self, region: str | None = None):
        """The load balancer plane's client factory."""
        return self.clients("elbv2", region or self.configured_regions[0])

    # ---- lifecycle

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL runs as another user, who must pass through
            self.state_dir.chmod(self.state_dir.stat().st_mode | 0o111)
        for stale in ("tasks", "rds"):  # the API starts empty: nothing of a previous run survives
            shutil.rmtree(self.state_dir / stale, ignore_errors=True)
        self.hosts_file.unlink(missing_ok=True)

        self.shipper = logs.LogShipper(lambda region: self.clients("logs", region))
        self.shipper.start()
        runtime = ecs.TaskRuntime(
            state_dir=self.state_dir,
            app_dir=self.app_dir,
            python=self.python,
            endpoint_url=self.endpoint_url,
            hosts_file=self.hosts_file,
            taskenv_dir=Path(__file__).resolve().parent / "taskenv",
            owner=str(self.state_dir),
        )
        self.ecs = ecs.EcsPlane(
            self.clients,
            self.registry,
            runtime,
            regions=self.regions,
            account_id=self.account_id,
            shipper=self.shipper,
            mirror=ecs.MotoEcsMirror(self.account_id) if self.emulator_in_process else None,
            backoff_base=self.backoff[0],
            backoff_cap=self.backoff[1],
        )
        password_source = rds.moto_master_password(self.account_id) if self.emulator_in_process else _no_password
        # The local cloud's CA: the load balancer's certificate, which also issues the databases' (tls.py).
        with contextlib.suppress(ImportError):
            from localcloud.dataplane import tls

            self.tls_cert = tls.self_signed(self.state_dir / "tls")
        self.rds = rds.RdsPlane(
            self.clients,
            self.state_dir,
            regions=self.regions,
            password_source=password_source,
            hosts_file=self.hosts_file,
            mirror=rds.MotoRdsMirror(self.account_id) if self.emulator_in_process else None,
            restore_source=rds.moto_restore_source(self.account_id) if self.emulator_in_process else rds.no_restore,
            ca=self.tls_cert,
        )
        self.usage = UsagePublisher(self.clients, self.account_id)
        if self.scaling_enabled if self.scaling_enabled is not None else scaling_enabled_by_env():
            self.scaling = ServiceScaler(self.clients, self._scaled_regions)
        if self.load_balancer:
            self._start_load_balancer()
        if self.alarms_enabled:
            self.alarm_evaluator = alarms.AlarmEvaluator(self.clients, self.regions)
            self.alarm_evaluator.start()
        self._thread = threading.Thread(target=self._run, name="data-plane", daemon=True)
        self._thread.start()

    def _start_load_balancer(self) -> None:
        try:
            from localcloud.dataplane.lb import LoadBalancerPlane
        except ImportError as exc:
            self.lb_error = f"no load balancer plane: {exc}"
            log.warning("%s", self.lb_error)
            return
        from localcloud.dataplane.lb.metrics import LbMetrics, enabled_by_env

        if self.metrics_enabled if self.metrics_enabled is not None else enabled_by_env():
            region = self.configured_regions[0]
            self.lb_metrics = LbMetrics(lambda: self.clients("cloudwatch", region), self.registry)
        self.lb = LoadBalancerPlane(
            self.elbv2,
            self.registry,
            port_map=self.port_map,
            host="127.0.0.1",
            tls_cert=self.tls_cert,
            metrics=self.lb_metrics,
        )
        self.lb.start()
        try:
            from localcloud.dataplane.apisync import ApiTargetSync
        except ImportError as exc:
            log.warning("no API target sync: %s", exc)
            return
        self.api_sync = ApiTargetSync(self.elbv2)
        self.api_sync.attach(self.registry)

    def _run(self) -> None:
        self._state = "running"
        while not self._stop.is_set():
            started = time.monotonic()
            self.run_once()
            self._stop.wait(max(0.05, self.tick - (time.monotonic() - started)))

    def run_once(self) -> None:
        """One reconcile round (the loop's body)."""
        for plane in (self.rds, self.ecs):
            try:
                plane.reconcile()
            except Exception:  # noqa: BLE001 - the loop must go on
                log.exception("%s reconcile failed", type(plane).__name__)
        if time.monotonic() >= self._next_status:
            self._next_status = time.monotonic() + 1.0
            self.write_status()
        if self.usage is not None and time.monotonic() >= self._next_usage:
            self._next_usage = time.monotonic() + USAGE_INTERVAL
            self.usage.publish(list(self.ecs.tasks.values()))
        if self.scaling is not None and time.monotonic() >= self._next_scaling:
            self._next_scaling = time.monotonic() + self.scaling.interval
            try:
                self.scaling.run()
            except Exception:  # noqa: BLE001 - the loop must go on
                log.exception("scaling the ECS services failed")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop everything this data plane started: traffic first, then tasks, then databases."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._state = "stopping"
        for name, part in (
            ("alarm evaluator", self.alarm_evaluator),
            ("api sync", self.api_sync),
            ("load balancer", self.lb),
        ):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001
                    log.exception("stopping the %s failed", name)
        if self.ecs is not None:
            self.ecs.shutdown(timeout=min(timeout, 30.0))
        if self.rds is not None:
            self.rds.shutdown(timeout=timeout)
        if self.shipper is not None:
            self.shipper.stop()
        self._state = "stopped"
        self.write_status()

    # ---- status

    def status(self) -> dict:
        planes = self.ecs.status() if self.ecs else {"services": [], "tasks": []}
        balancer: dict = {"running": self.lb is not None, "error": self.lb_error, "listeners": [], "target_groups": []}
        if self.lb is not None:
            try:
                balancer.update(self.lb.status())
            except Exception as exc:  # noqa: BLE001
                balancer["error"] = f"status unavailable: {exc}"
        return {
            "state": self._state,
            "pid": os.getpid(),
            "updated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "endpoint_url": self.endpoint_url,
            "state_dir": str(self.state_dir),
            "regions": self.regions() if self.ecs else self.configured_regions,
            "load_balancer": balancer,
            "tls_certificate": self.tls_cert[0] if self.tls_cert else None,
            "services": planes["services"],
            "tasks": planes["tasks"],
            "databases": self.rds.status() if self.rds else [],
            "metrics": {
                "published": self.lb_metrics is not None,
                "datums": self.lb_metrics.published if self.lb_metrics else 0,
            },
            "alarms": {
                "evaluated": self.alarm_evaluator is not None,
                "state_changes": self.alarm_evaluator.changes if self.alarm_evaluator else 0,
            },
            "db_snapshots": self.rds.snapshot_status() if self.rds else [],
            "scaling": self.scaling.status() if self.scaling else {"enabled": False, "targets": {}},
        }

    def write_status(self) -> None:
        try:
            status = self.status()
        except Exception:  # noqa: BLE001
            log.exception("collecting the status failed")
            return
        temporary = self.status_file.with_name(f".{STATUS_FILE}.tmp")
        temporary.write_text(json.dumps(status, indent=2, default=str))
        os.replace(temporary, self.status_file)


def _no_password(region: str, identifier: str) -> None:  # noqa: ARG001 - a PasswordSource
    return None
