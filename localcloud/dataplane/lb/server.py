"""Serving: :class:`LoadBalancerPlane` serves every listener on a local port with aiohttp, in an
event loop of its own thread, and forwards requests to the targets of the shared registry."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from localcloud.dataplane import tls
from localcloud.dataplane.health import HealthChecker
from localcloud.dataplane.lb.apiread import read_api
from localcloud.dataplane.lb.metrics import LbMetrics
from localcloud.dataplane.lb.model import (
    DEFAULT_IDLE_TIMEOUT,
    EMPTY,
    FixedResponse,
    Forward,
    ListenerConfig,
    Redirect,
    RequestFacts,
    SmoothWeighted,
    Snapshot,
    TargetGroupConfig,
    name_from_arn,
    redirect_location,
    summarize_action,
)
from localcloud.dataplane.lb.proxy import LB_SERVER, host_without_port, lb_error, proxy
from localcloud.dataplane.registry import Target, TargetRegistry

LOG = logging.getLogger(__name__)

DEFAULT_PORT_MAP = {80: 8080, 443: 8443}
UNMAPPED_PORT_OFFSET = 8000  # for listener ports below 1024 that port_map does not name
PORT_SEARCH = 100
START_WAIT = 5.0  # start() waits this long at most for the first read of the API
UPSTREAM_KEEPALIVE = 15.0  # idle connections to targets are kept this long (less than gunicorn's)
MAX_HEADER_LINE = 16384  # ALB takes a 16 KB request line and 16 KB header lines


@dataclasses.dataclass
class _Site:
    listener_arn: str
    protocol: str
    ssl_policy: str | None
    local_port: int | None
    runner: web.ServerRunner | None = None
    site: web.SockSite | None = None
    error: str | None = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (optional, in requirements-dev.txt; about twice the
    throughput on this workload, see bench/localcloud.py), else asyncio's. LOCALCLOUD_LB_UVLOOP=0
    chooses asyncio's."""
    if os.environ.get("LOCALCLOUD_LB_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class LoadBalancerPlane:
    """Every ALB listener of the local AWS API served on a loopback port (docs/local-cloud.md, "The load balancer").

    ``elbv2_factory()`` returns a boto3 elbv2 client for the local AWS API; it is called once, in
    the thread that polls. ``port_map`` maps listener ports to local ports (default
    ``{80: 8080, 443: 8443}``); ``host`` is the loopback address every port listens on;
    ``tls_cert`` is ``(certfile, keyfile)`` for HTTPS listeners (default: a self-signed one made at
    start). Beyond the orchestrator's interface: ``idle_timeout`` overrides the load balancers'
    idle timeout (504 after that many silent seconds from a target), ``health_time_scale``
    multiplies every health check interval and timeout (1.0: the target groups' own),
    ``shutdown_grace`` is how long a closing port lets in-flight requests finish, and ``metrics``
    (when given) publishes the AWS/ApplicationELB metrics (:mod:`~localcloud.dataplane.lb.metrics`).
    """

    def __init__(
        self,
        elbv2_factory: Callable[[], Any],
        registry: TargetRegistry,
        *,
        port_map: dict[int, int] | None = None,
        host: str = "127.0.0.1",
        tls_cert: tuple[str, str] | None = None,
        poll_interval: float = 0.25,
        idle_timeout: float | None = None,
        health_time_scale: float = 1.0,
        shutdown_grace: float = 2.0,
        metrics: LbMetrics | None = None,
    ) -> None:
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            raise ValueError(f"the local load balancer listens on loopback addresses only, not {host!r}")
        self._factory = elbv2_factory
        self._registry = registry
        self._port_map = dict(DEFAULT_PORT_MAP if port_map is None else port_map)
        self._host = host
        self._tls_cert = tls_cert
        self._poll_interval = max(0.05, float(poll_interval))
        self._idle_timeout = idle_timeout
        self._health_time_scale = health_time_scale
        self._shutdown_grace = shutdown_grace
        self._metrics = metrics

        self._snapshot = EMPTY
        self._sites: dict[str, _Site] = {}  # mutated in the loop thread; status() reads a copy
        self._sites_lock = threading.Lock()
        self._poll_state: dict[str, Any] = {"ok": None, "error": None, "at": None}
        self._pickers: dict[tuple, SmoothWeighted] = {}
        self._round_robin: dict[str, int] = {}
        self._closing: set[asyncio.Task] = set()

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tempdir: str | None = None
        self._certfile: str | None = None
        self._keyfile: str | None = None
        self._ssl_contexts: dict[str | None, Any] = {}
        self._session: aiohttp.ClientSession | None = None
        self._health: HealthChecker | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the event loop thread; return after the first read of the API (at most ~5 s:
        when the API does not answer yet, the ports open once it does)."""
        if self._thread is not None:
            raise RuntimeError("LoadBalancerPlane.start() was called already")
        if self._tls_cert is None:
            self._tempdir = tempfile.mkdtemp(prefix="localcloud-lb-")
            self._certfile, self._keyfile = tls.self_signed(self._tempdir)
        else:
            self._certfile, self._keyfile = self._tls_cert
        self._thread = threading.Thread(target=self._run, name="localcloud-lb", daemon=True)
        self._thread.start()
        if self._metrics is not None:
            self._metrics.topology = self.topology
            self._metrics.start()
        self._ready.wait(START_WAIT + 10)
        if self._startup_error is not None:
            self.stop()
            raise RuntimeError("the load balancer did not start") from self._startup_error

    def stop(self) -> None:
        """Close every local port (in-flight requests get ``shutdown_grace`` seconds to finish, then
        are aborted), stop health checking, and join the thread. Idempotent."""
        self._stop_requested = True
        thread, loop = self._thread, self._loop
        if thread is not None and thread.is_alive():
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(self._request_stop)
            thread.join(timeout=self._shutdown_grace + 30)
            if thread.is_alive():
                LOG.error("the load balancer thread did not stop within %.0f s", self._shutdown_grace + 30)
        if self._executor is not None:  # the poll thread ends after its current API call
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._metrics is not None:  # after the traffic: its last seconds are published too
            self._metrics.stop()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def _request_stop(self) -> None:
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    def _run(self) -> None:
        loop = self._loop_factory()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(); the thread must not die silently
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                LOG.exception("the load balancer stopped on an error")
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:  # e.g. a connection handler that outlived the grace
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        if self._stop_requested:  # stop() came before the loop was up
            self._stop_event.set()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="localcloud-lb-poll")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE, use_dns_cache=False),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self._health = HealthChecker(self._registry, time_scale=self._health_time_scale)
        await self._health.start()
        first_read = asyncio.Event()
        poller = asyncio.get_running_loop().create_task(self._poll_forever(first_read))
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(first_read.wait(), START_WAIT)
            self._ready.set()
            await self._stop_event.wait()
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            await self._shutdown()

    async def _shutdown(self) -> None:
        with self._sites_lock:
            sites = list(self._sites.values())
            self._sites = {}
        for site in sites:  # stop accepting at once, everywhere
            if site.site is not None:
                with contextlib.suppress(Exception):
                    await site.site.stop()
        await asyncio.gather(*(self._drain(site) for site in sites), *self._closing, return_exceptions=True)
        if self._health is not None:
            await self._health.close()
        if self._session is not None:
            await self._session.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- keeping up with the API ------------------------------------------------------------------

    async def _poll_forever(self, first_read: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        client = None
        while True:
            started = loop.time()
            try:
                if client is None:
                    client = await loop.run_in_executor(self._executor, self._factory)
                snapshot = await loop.run_in_executor(
                    self._executor, functools.partial(read_api, client, self._snapshot, now=time.monotonic())
                )
                await self._apply(snapshot)
                self._poll_state = {"ok": True, "error": None, "at": time.time()}
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if self._poll_state.get("error") != message:
                    LOG.warning("reading the load balancers from the AWS API failed: %s", message)
                self._poll_state = {"ok": False, "error": message, "at": time.time()}
            first_read.set()
            await asyncio.sleep(max(0.0, started + self._poll_interval - loop.time()))

    async def _apply(self, snapshot: Snapshot) -> None:
        previous, self._snapshot = self._snapshot, snapshot
        assert self._health is not None
        self._health.configure({arn: group.health for arn, group in snapshot.target_groups.items()})
        if previous.listeners != snapshot.listeners:
            self._pickers.clear()

        with self._sites_lock:
            sites = dict(self._sites)
        for arn in [arn for arn in sites if arn not in snapshot.listeners]:
            await self._close_site(sites.pop(arn), graceful=True)
        ordered = sorted(
            snapshot.listeners.values(),
            key=lambda listener: (listener.load_balancer_created, listener.load_balancer_name, listener.port),
        )
        for listener in ordered:
            site = sites.get(listener.arn)
            if site is not None and (site.protocol, site.ssl_policy) != (listener.protocol, listener.ssl_policy):
                # HTTP <-> HTTPS or another TLS policy: same local port, served anew.
                await self._close_site(site, graceful=True)
                sites[listener.arn] = await self._open_site(listener, sites, site.local_port)
            elif site is None or (site.site is None and site.error):
                sites[listener.arn] = await self._open_site(listener, sites, site.local_port if site else None)
        with self._sites_lock:
            self._sites = sites

    def _bind(self, listener: ListenerConfig, sites: Mapping[str, _Site], keep: int | None) -> socket.socket:
        taken = {site.local_port for site in sites.values() if site.listener_arn != listener.arn}
        if keep is not None:
            candidates = [keep]
        else:
            mapped = self._port_map.get(listener.port)
            if mapped is None:
                mapped = listener.port + UNMAPPED_PORT_OFFSET if listener.port < 1024 else listener.port
            candidates = [port for port in range(mapped, mapped + PORT_SEARCH) if port <= 65535]
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        last_error: OSError | None = None
        for port in [*candidates, 0]:
            if port in taken:
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self._host, port))
                sock.listen(512)
                sock.setblocking(False)
                return sock
            except OSError as exc:
                sock.close()
                last_error = exc
                if exc.errno != errno.EADDRINUSE or keep is not None:
                    break
        raise last_error or OSError("no local port")

    async def _open_site(self, listener: ListenerConfig, sites: Mapping[str, _Site], keep: int | None) -> _Site:
        site = _Site(listener.arn, listener.protocol, listener.ssl_policy, keep)
        try:
            sock = self._bind(listener, sites, keep)
            site.local_port = sock.getsockname()[1]
            context = None
            if listener.protocol == "HTTPS":
                context = self._ssl_context(listener.ssl_policy)
            server = web.Server(
                functools.partial(self._handle, listener.arn),
                access_log=None,
                max_line_size=MAX_HEADER_LINE,
                max_field_size=MAX_HEADER_LINE,
            )
            site.runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=self._shutdown_grace)
            await site.runner.setup()
            site.site = web.SockSite(site.runner, sock, ssl_context=context)
            await site.site.start()
            LOG.info(
                "listener %s:%s %s -> %s",
                listener.load_balancer_name,
                listener.port,
                listener.protocol,
                self._local_url(listener.protocol, site.local_port),
            )
        except Exception as exc:  # reported in status(); tried again at the next poll
            message = f"{type(exc).__name__}: {exc}"
            if site.error != message:
                LOG.warning("cannot serve listener %s locally: %s", listener.arn, message)
            site.error = message
            if site.runner is not None:
                with contextlib.suppress(Exception):
                    await site.runner.cleanup()
            site.runner, site.site = None, None
        return site

    def _ssl_context(self, policy: str | None):
        if policy not in self._ssl_contexts:
            assert self._certfile and self._keyfile
            self._ssl_contexts[policy] = tls.server_context(self._certfile, self._keyfile, policy)
        return self._ssl_contexts[policy]

    async def _close_site(self, site: _Site, *, graceful: bool) -> None:
        """Stop accepting on the port now; let in-flight requests finish in the background."""
        if site.site is not None:
            with contextlib.suppress(Exception):
                await site.site.stop()
        if graceful:
            task = asyncio.get_running_loop().create_task(self._drain(site))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            await self._drain(site)

    @staticmethod
    async def _drain(site: _Site) -> None:
        if site.runner is not None:
            with contextlib.suppress(Exception):
                await site.runner.cleanup()
            site.runner = None

    # -- requests ----------------------------------------------------------------------------------

    def _local_port_for(self, listener: ListenerConfig, port: int) -> int:
        """The local port serving ``port`` on the listener's load balancer (else port_map's)."""
        with self._sites_lock:
            sites = dict(self._sites)
        for other in self._snapshot.listeners.values():
            if other.load_balancer_arn == listener.load_balancer_arn and other.port == port:
                site = sites.get(other.arn)
                if site is not None and site.local_port:
                    return site.local_port
        return self._port_map.get(port, port)

    async def _handle(self, listener_arn: str, request: web.BaseRequest) -> web.StreamResponse:
        snapshot = self._snapshot
        listener = snapshot.listeners.get(listener_arn)
        if listener is None:  # deleted: the port is closing
            return lb_error(503)
        action, action_key = listener.default_action, (listener.arn, listener.default_rule_arn)
        if listener.rules:
            facts = RequestFacts(
                method=request.method,
                path=request.rel_url.path,
                host=host_without_port(request.host),
                headers=request.headers,
                query=tuple(request.rel_url.query.items()),
                client_ip=request.remote or "",
            )
            for rule in listener.rules:
                if all(condition.matches(facts) for condition in rule.conditions):
                    action, action_key = rule.action, (listener.arn, rule.arn)
                    break
        if isinstance(action, Forward):
            return await self._forward(request, listener, action, action_key, snapshot)
        if isinstance(action, Redirect):
            location = redirect_location(
                action,
                protocol=listener.protocol,
                host=host_without_port(request.host),
                port=listener.port,
                raw_path=request.rel_url.raw_path,
                raw_query=request.rel_url.raw_query_string,
                local_port_for=functools.partial(self._local_port_for, listener),
            )
            status = 302 if action.status_code == "HTTP_302" else 301
            self._lb_answered(listener, None, status)
            return web.Response(status=status, headers={"Location": location, "Server": LB_SERVER})
        if isinstance(action, FixedResponse):
            self._lb_answered(listener, None, int(action.status_code))
            return web.Response(
                status=int(action.status_code),
                body=action.body.encode(),
                headers={"Content-Type": action.content_type, "Server": LB_SERVER},
            )
        self._lb_answered(listener, None, 503)
        return lb_error(503)

    def _lb_answered(self, listener: ListenerConfig, group_arn: str | None, status: int) -> None:
        if self._metrics is not None:
            self._metrics.lb_response(listener.load_balancer_arn, group_arn, status)

    def _pick_group(self, action_key: tuple, action: Forward) -> str | None:
        """A target group by weight; None when every weight is 0 (ALB answers 503)."""
        if len(action.groups) == 1:
            return action.groups[0][0] if action.groups[0][1] > 0 else None
        key = (*action_key, action.groups)
        picker = self._pickers.get(key)
        if picker is None:
            if len(self._pickers) > 1000:
                self._pickers.clear()
            picker = self._pickers[key] = SmoothWeighted(action.groups)
        return picker.pick()

    def _pick_target(self, group: TargetGroupConfig | None, group_arn: str, targets: list[Target]) -> Target:
        turn = self._round_robin.get(group_arn, 0)
        self._round_robin[group_arn] = turn + 1
        if group is not None and group.algorithm == "least_outstanding_requests":
            fewest = min(target.inflight for target in targets)
            targets = [target for target in targets if target.inflight == fewest]
        return targets[turn % len(targets)]

    async def _forward(
        self, request: web.BaseRequest, listener: ListenerConfig, action: Forward, action_key: tuple, snapshot: Snapshot
    ) -> web.StreamResponse:
        group_arn = self._pick_group(action_key, action)
        if group_arn is None:
            self._lb_answered(listener, None, 503)
            return lb_error(503)
        targets = self._registry.routable(group_arn)
        if not targets:
            self._lb_answered(listener, None, 503)
            return lb_error(503)
        target = self._pick_target(snapshot.target_groups.get(group_arn), group_arn, targets)
        idle = self._idle_timeout
        if idle is None:
            idle = snapshot.idle_timeouts.get(listener.load_balancer_arn, DEFAULT_IDLE_TIMEOUT)
        self._registry.begin_request(target.key)
        try:
            assert self._session is not None
            if self._metrics is None:
                return await proxy(self._session, request, listener, target, idle)
            answered: list = []
            response = await proxy(self._session, request, listener, target, idle, answered=answered.append)
            if answered:  # (status, seconds to its headers)
                self._metrics.target_response(listener.load_balancer_arn, group_arn, *answered[0])
            else:
                self._metrics.lb_response(listener.load_balancer_arn, group_arn, response.status)
            return response
        finally:
            self._registry.end_request(target.key)

    def topology(self) -> dict[str, set[str]]:
        """Target group ARN -> the ARNs of the load balancers whose listeners forward to it."""
        groups: dict[str, set[str]] = {}
        for listener in self._snapshot.listeners.values():
            for action in (listener.default_action, *(rule.action for rule in listener.rules)):
                if isinstance(action, Forward):
                    for group_arn, _weight in action.groups:
                        groups.setdefault(group_arn, set()).add(listener.load_balancer_arn)
        return groups

    # -- status ------------------------------------------------------------------------------------

    def _local_url(self, protocol: str, port: int | None) -> str | None:
        if not port:
            return None
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{protocol.lower()}://{host}:{port}"

    def status(self) -> dict:
        """JSON-able, for ``localcloud status`` (and ``--json``)::

            {"listeners": [{"load_balancer", "load_balancer_arn", "dns_name", "listener_arn", "protocol",
                            "port", "local_port", "local_url", "error",
                            "default_action": {"type": "forward", "weights": {name: weight},
                                               "target_groups": [{"name", "arn", "weight"}]}
                                            | {"type": "redirect", "status_code", "protocol", "port",
                                               "host", "path", "query", "local_port"}
                                            | {"type": "fixed-response", "status_code", "content_type",
                                               "message_body"},
                            "rules": [{"priority", "conditions": [{"field", "values"}], "action": {...}}]}],
             "target_groups": [{"arn", "name", "port", "health_check": {...}, "deregistration_delay",
                                "algorithm", "targets": [{"ip", "port", "task_id", "health", "reason",
                                                          "inflight"}]}],
             "tls_certificate": "/path/lb-cert.pem",
             "api": {"ok", "error", "read_at"}}

        Listeners are sorted by load balancer name and port; ``local_port``/``local_url`` are None
        (and ``error`` says why) while a listener cannot be served."""
        snapshot = self._snapshot
        with self._sites_lock:
            sites = dict(self._sites)
        names = {arn: group.name for arn, group in snapshot.target_groups.items()}
        listeners = []
        for listener in sorted(snapshot.listeners.values(), key=lambda x: (x.load_balancer_name, x.port)):
            site = sites.get(listener.arn)
            local_port = site.local_port if site is not None and site.site is not None else None
            port_for = functools.partial(self._local_port_for, listener)
            listeners.append(
                {
                    "load_balancer": listener.load_balancer_name,
                    "load_balancer_arn": listener.load_balancer_arn,
                    "dns_name": listener.dns_name,
                    "listener_arn": listener.arn,
                    "protocol": listener.protocol,
                    "port": listener.port,
                    "local_port": local_port,
                    "local_url": self._local_url(listener.protocol, local_port),
                    "error": site.error if site is not None else None,
                    "default_action": summarize_action(listener.default_action, names, port_for),
                    "rules": [
                        {
                            "priority": rule.priority,
                            "conditions": [{"field": c.field, "values": list(c.values)} for c in rule.conditions],
                            "action": summarize_action(rule.action, names, port_for),
                        }
                        for rule in listener.rules
                    ],
                }
            )
        by_group: dict[str, list[Target]] = {}
        for target in self._registry.targets():
            by_group.setdefault(target.target_group_arn, []).append(target)
        target_groups = []
        for arn in sorted(set(snapshot.target_groups) | set(by_group), key=lambda a: names.get(a, name_from_arn(a))):
            group = snapshot.target_groups.get(arn)
            target_groups.append(
                {
                    "arn": arn,
                    "name": group.name if group else name_from_arn(arn),
                    "port": group.port if group else None,
                    "health_check": group.health.summary() if group else None,
                    "deregistration_delay": group.deregistration_delay if group else None,
                    "algorithm": group.algorithm if group else None,
                    "targets": [
                        {
                            "ip": t.ip,
                            "port": t.port,
                            "task_id": t.task_id,
                            "health": str(t.health),
                            "reason": t.reason,
                            "inflight": t.inflight,
                        }
                        for t in sorted(by_group.get(arn, []), key=lambda t: (t.ip, t.port))
                    ],
                }
            )
        poll = dict(self._poll_state)
        return {
            "listeners": listeners,
            "target_groups": target_groups,
            "tls_certificate": self._certfile,
            "api": {"ok": poll["ok"], "error": poll["error"], "read_at": poll["at"]},
        }

    def deregistration_delay(self, target_group_arn: str) -> float | None:
        """The group's ``deregistration_delay.timeout_seconds`` (None: unknown group), for the
        runner that decides when a draining task stops."""
        group = self._snapshot.target_groups.get(target_group_arn)
        return group.deregistration_delay if group else None
