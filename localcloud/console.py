"""``localcloud console``: a live page of the local cloud, and the data endpoint behind it.

What an operator looks at while a canary bakes, read from the local AWS API the way a console
reads AWS (nothing from the data plane's memory): the load balancers' listeners and the weight
of each target group, the targets and their health per colour, requests per second, 5xx rate
and p99 latency per colour over the last minutes (``GetMetricData`` on the AWS/ApplicationELB
metrics the local load balancer publishes), the services' tasks and the version each runs, and
the alarms' states.

``GET /`` is the page (``console.html``: one document, no external script or style, charts drawn as
SVG; its parts carry ids: ``#listeners``, ``#targets``, ``#services``, ``#alarms``, ``#chart-requests``,
``#chart-errors``, ``#chart-latency``, ``#updated``);
``GET /api/state`` the JSON it draws, asked again every ``POLL_SECONDS``. ``localcloud console
--once`` prints that JSON and exits.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

POLL_SECONDS = 2  # the page asks for /api/state this often
PAGE = (Path(__file__).with_name("console.html")).read_text().replace("POLL_MS", str(POLL_SECONDS * 1000))
WINDOW_SECONDS = 300  # the charts' span
PERIOD_SECONDS = 10  # one chart point
CACHE_SECONDS = 1.0  # several tabs share one read of the API
COLOURS = ("blue", "green")


def _colour(tags: dict[str, str], name: str) -> str:
    if tags.get("Color"):
        return tags["Color"]
    return next((c for c in COLOURS if name.endswith(f"-{c}")), name)


def _image_version(image: str) -> str:
    """``v2`` of ``...:v2``; the digest's start of ``...@sha256:...``."""
    if "@" in image:
        return image.rsplit("@", 1)[1][:19]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


@dataclasses.dataclass
class ConsoleData:
    """Reads one region of the account through ``clients(service, region)``."""

    clients: Callable[[str, str], Any]
    region: str
    window_seconds: int = WINDOW_SECONDS
    period_seconds: int = PERIOD_SECONDS
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)

    def snapshot(self) -> dict:
        elbv2 = self.clients("elbv2", self.region)
        groups = self._target_groups(elbv2)
        return {
            "region": self.region,
            "generated_at": self.now().isoformat(timespec="seconds"),
            "period_seconds": self.period_seconds,
            "load_balancers": self._load_balancers(elbv2, groups),
            "target_groups": list(groups.values()),
            "series": self._series(groups),
            "services": self._services(),
            "alarms": self._alarms(),
        }

    # -- the load balancer ---------------------------------------------------------------------

    def _target_groups(self, elbv2) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for page in elbv2.get_paginator("describe_target_groups").paginate():
            for group in page["TargetGroups"]:
                found[group["TargetGroupArn"]] = {
                    "arn": group["TargetGroupArn"],
                    "name": group["TargetGroupName"],
                    "load_balancers": group.get("LoadBalancerArns", []),
                }
        arns = list(found)
        for first in range(0, len(arns), 20):
            for described in elbv2.describe_tags(ResourceArns=arns[first : first + 20])["TagDescriptions"]:
                tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
                group = found[described["ResourceArn"]]
                group["colour"] = _colour(tags, group["name"])
        for group in found.values():
            group.setdefault("colour", _colour({}, group["name"]))
            health = elbv2.describe_target_health(TargetGroupArn=group["arn"])["TargetHealthDescriptions"]
            group["targets"] = [
                {
                    "id": t["Target"]["Id"],
                    "port": t["Target"].get("Port"),
                    "state": t["TargetHealth"]["State"],
                    "reason": t["TargetHealth"].get("Reason", ""),
                }
                for t in health
            ]
            group["healthy"] = sum(t["state"] == "healthy" for t in group["targets"])
        return found

    def _load_balancers(self, elbv2, groups: dict[str, dict]) -> list[dict]:
        result = []
        for page in elbv2.get_paginator("describe_load_balancers").paginate():
            for lb in page["LoadBalancers"]:
                listeners = []
                for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                    listeners.append(
                        {
                            "port": listener["Port"],
                            "protocol": listener["Protocol"],
                            "action": self._action(listener.get("DefaultActions", []), groups),
                        }
                    )
                listeners.sort(key=lambda item: item["port"])
                result.append({"name": lb["LoadBalancerName"], "dns": lb.get("DNSName", ""), "listeners": listeners})
        return result

    @staticmethod
    def _action(actions: list[dict], groups: dict[str, dict]) -> dict:
        for action in sorted(actions, key=lambda a: a.get("Order", 0)):
            if action["Type"] == "forward":
                targets = (action.get("ForwardConfig") or {}).get("TargetGroups") or [
                    {"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}
                ]
                total = sum(t.get("Weight", 1) for t in targets) or 1
                return {
                    "type": "forward",
                    "weights": [
                        {
                            "target_group": groups.get(t["TargetGroupArn"], {}).get("name", t["TargetGroupArn"]),
                            "colour": groups.get(t["TargetGroupArn"], {}).get("colour", ""),
                            "weight": t.get("Weight", 1),
                            "percent": round(100 * t.get("Weight", 1) / total, 1),
                        }
                        for t in targets
                    ],
                }
            if action["Type"] == "redirect":
                config = action.get("RedirectConfig", {})
                return {"type": "redirect", "to": f"{config.get('Protocol', '#{protocol}')}:{config.get('Port')}"}
            if action["Type"] == "fixed-response":
                return {"type": "fixed-response", "status": action.get("FixedResponseConfig", {}).get("StatusCode")}
        return {"type": "none"}

    # -- metrics -------------------------------------------------------------------------------

    def _series(self, groups: dict[str, dict]) -> dict[str, dict]:
        """Per colour: the chart points (requests/s, 5xx %, p99 ms) of the last window."""
        queries, index = [], {}
        for n, group in enumerate(g for g in groups.values() if g["load_balancers"]):
            dims = [
                {"Name": "TargetGroup", "Value": "targetgroup/" + group["arn"].split(":targetgroup/", 1)[1]},
                {
                    "Name": "LoadBalancer",
                    "Value": "app/" + group["load_balancers"][0].split(":loadbalancer/app/", 1)[1],
                },
            ]
            for key, metric, stat in (
                ("req", "RequestCount", "Sum"),
                ("err", "HTTPCode_Target_5XX_Count", "Sum"),
                ("p99", "TargetResponseTime", "p99"),
            ):
                query_id = f"{key}{n}"
                index[query_id] = (group["colour"], key)
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dims},
                            "Period": self.period_seconds,
                            "Stat": stat,
                        },
                    }
                )
        if not queries:
            return {}
        # Whole periods, aligned on multiples of the period as CloudWatch advises, so each point
        # holds one period's datapoints and the last, unfinished one is left out.
        now = self.now()
        end = now.replace(microsecond=0) - datetime.timedelta(seconds=int(now.timestamp()) % self.period_seconds)
        start = end - datetime.timedelta(seconds=self.window_seconds)
        values: dict[str, dict[str, dict[str, float]]] = {}
        cloudwatch = self.clients("cloudwatch", self.region)
        for first in range(0, len(queries), 500):
            kwargs = {"MetricDataQueries": queries[first : first + 500], "StartTime": start, "EndTime": end}
            for page in cloudwatch.get_paginator("get_metric_data").paginate(**kwargs):
                for result in page["MetricDataResults"]:
                    colour, key = index[result["Id"]]
                    points = values.setdefault(colour, {}).setdefault(key, {})
                    for stamp, value in zip(result["Timestamps"], result["Values"], strict=False):
                        label = stamp.astimezone(datetime.UTC).strftime("%H:%M:%S")
                        # a colour with several groups: counts add up, the p99 shown is the worst
                        merge = max if key == "p99" else (lambda a, b: a + b)
                        points[label] = merge(points[label], value) if label in points else value
        window = [
            (start + datetime.timedelta(seconds=offset)).astimezone(datetime.UTC).strftime("%H:%M:%S")
            for offset in range(0, self.window_seconds, self.period_seconds)
        ]
        series = {}
        for colour, by_key in sorted(values.items()):
            stamps = window  # every period of the window: no request is a 0 on the chart, not a gap
            requests = by_key.get("req", {})
            errors = by_key.get("err", {})
            p99 = by_key.get("p99", {})
            series[colour] = {
                "time": stamps,
                "requests_per_second": [round(requests.get(s, 0.0) / self.period_seconds, 2) for s in stamps],
                "error_rate_percent": [
                    round(100 * errors.get(s, 0.0) / requests[s], 2) if requests.get(s) else 0.0 for s in stamps
                ],
                "p99_ms": [round(1000 * p99[s], 1) if s in p99 else None for s in stamps],
            }
        return series

    # -- services and alarms -------------------------------------------------------------------

    def _services(self) -> list[dict]:
        ecs = self.clients("ecs", self.region)
        found, definitions = [], {}

        def version(arn: str) -> str:
            if arn not in definitions:
                containers = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"]
                definitions[arn] = _image_version(containers[0]["image"]) if containers else ""
            return definitions[arn]

        for cluster in ecs.list_clusters()["clusterArns"]:
            arns = ecs.list_services(cluster=cluster)["serviceArns"]
            for first in range(0, len(arns), 10):
                for service in ecs.describe_services(cluster=cluster, services=arns[first : first + 10])["services"]:
                    if service.get("status") != "ACTIVE":
                        continue
                    task_arns = ecs.list_tasks(cluster=cluster, serviceName=service["serviceName"])["taskArns"]
                    tasks = ecs.describe_tasks(cluster=cluster, tasks=task_arns)["tasks"] if task_arns else []
                    found.append(
                        {
                            "cluster": cluster.split("/")[-1],
                            "name": service["serviceName"],
                            "colour": _colour({}, service["serviceName"]),
                            "desired": service.get("desiredCount", 0),
                            "running": service.get("runningCount", 0),
                            "task_definition": service["taskDefinition"].split("/")[-1],
                            "version": version(service["taskDefinition"]),
                            "tasks": sorted(
                                (
                                    {
                                        "id": t["taskArn"].split("/")[-1],
                                        "status": t.get("lastStatus", ""),
                                        "health": t.get("healthStatus", "UNKNOWN"),
                                        "task_definition": t["taskDefinitionArn"].split("/")[-1],
                                        "version": version(t["taskDefinitionArn"]),
                                    }
                                    for t in tasks
                                ),
                                key=lambda t: t["id"],
                            ),
                        }
                    )
        return sorted(found, key=lambda s: (s["cluster"], s["name"]))

    def _alarms(self) -> list[dict]:
        cloudwatch = self.clients("cloudwatch", self.region)
        alarms = []
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            alarms += [
                {"name": a["AlarmName"], "state": a["StateValue"], "reason": a.get("StateReason", "")}
                for a in page["MetricAlarms"]
            ]
        return sorted(alarms, key=lambda a: a["name"])


class CachedSnapshot:
    """One read of the API per ``CACHE_SECONDS``, whatever the number of pages asking."""

    def __init__(self, data: ConsoleData, ttl: float = CACHE_SECONDS) -> None:
        self.data, self.ttl = data, ttl
        self._lock = threading.Lock()
        self._value: tuple[float, bytes] | None = None

    def get(self) -> bytes:
        """The snapshot's JSON (or ``{"error": ...}`` when the API could not be read)."""
        with self._lock:
            if self._value is None or time.monotonic() - self._value[0] >= self.ttl:
                try:
                    body = self.data.snapshot()
                except Exception as exc:  # noqa: BLE001 - the page shows why, and asks again
                    body = {"error": f"{type(exc).__name__}: {exc}"}
                self._value = (time.monotonic(), json.dumps(body).encode())
            return self._value[1]


def make_server(data: ConsoleData, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The console's HTTP server (``serve_forever`` it; ``server_address`` says where)."""
    cache = CachedSnapshot(data)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the handler's protocol
            path = self.path.split("?", 1)[0]
            if path == "/api/state":
                self._send(HTTPStatus.OK, "application/json", cache.get())
            elif path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
            else:
                self._send(HTTPStatus.NOT_FOUND, "application/json", b'{"error": "not found"}')

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # quiet: the page polls every few seconds
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
