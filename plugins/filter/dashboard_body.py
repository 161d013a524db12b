# Copyright: Contributors to the ecs_production.platform collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The body of an environment's CloudWatch dashboard, from the names and ARNs the roles hand on.

Four rows of three widgets (each 8 x 6 of the dashboard's 24 columns):

1. traffic by colour: requests, the targets' 5xx rate (metric math, with the alarm's threshold drawn),
   the p99 of the target response time;
2. health: healthy and unhealthy targets by colour, the load balancer's own 5xx, requests per target;
3. the database: CPU, connections, free storage;
4. the services: CPU and memory by colour, and the running tasks (Container Insights' RunningTaskCount).

A widget whose resource is unknown (no load balancer, no database identifier) is left out, so the body is
always one CloudWatch accepts.
"""

from ansible.errors import AnsibleFilterError

COLORS = ("blue", "green")
ELB = "AWS/ApplicationELB"


def _suffix(arn, marker):
    """The dimension value of an ARN: what follows ``marker`` (``app/NAME/ID``, ``targetgroup/NAME/ID``)."""
    arn = str(arn or "")
    if marker not in arn:
        return ""
    return arn.split(":", 5)[-1] if marker == "targetgroup/" else arn.split(":loadbalancer/", 1)[-1]


def _widget(x, y, title, region, metrics, **properties):
    body = {"title": title, "region": region, "view": "timeSeries", "stacked": False, "metrics": metrics}
    body.update(properties)
    return {"type": "metric", "x": x, "y": y, "width": 8, "height": 6, "properties": body}


def dashboard_body(inputs):
    """The dashboard body (a dict with ``widgets``) for ``inputs``: region, load_balancer_arn, target_groups
    (colour -> ARN), db_instance_identifier, cluster, services (colour -> service name), and
    alarm_5xx_rate_percent (the threshold line on the 5xx rate widget)."""
    if not isinstance(inputs, dict):
        raise AnsibleFilterError(f"dashboard_body: expects a dict of inputs, not {type(inputs).__name__}")
    region = str(inputs.get("region") or "")
    if not region:
        raise AnsibleFilterError("dashboard_body: region is required")
    lb = _suffix(inputs.get("load_balancer_arn"), ":loadbalancer/")
    groups = inputs.get("target_groups") or {}
    tgs = {c: _suffix(groups.get(c), "targetgroup/") for c in COLORS if _suffix(groups.get(c), "targetgroup/")}
    db = str(inputs.get("db_instance_identifier") or "")
    cluster = str(inputs.get("cluster") or "")
    services = {c: str(s) for c, s in (inputs.get("services") or {}).items() if c in COLORS and s}
    try:
        threshold = float(inputs.get("alarm_5xx_rate_percent", 5))
    except (TypeError, ValueError):
        raise AnsibleFilterError("dashboard_body: alarm_5xx_rate_percent must be a number") from None

    widgets = []
    if lb and tgs:
        per_tg = [(c, tgs[c]) for c in COLORS if c in tgs]

        def by_colour(name, **options):
            return [[ELB, name, "TargetGroup", tg, "LoadBalancer", lb, dict(options, label=c)] for c, tg in per_tg]

        rate = []
        for index, (colour, tg) in enumerate(per_tg):
            rate.append([{"expression": f"100 * FILL(e{index}, 0) / r{index}", "label": colour, "id": f"rate{index}"}])
            rate.append(
                [
                    ELB,
                    "HTTPCode_Target_5XX_Count",
                    "TargetGroup",
                    tg,
                    "LoadBalancer",
                    lb,
                    {"id": f"e{index}", "visible": False},
                ]
            )
            rate.append(
                [ELB, "RequestCount", "TargetGroup", tg, "LoadBalancer", lb, {"id": f"r{index}", "visible": False}]
            )
        widgets += [
            _widget(0, 0, "Requests per colour", region, by_colour("RequestCount"), stat="Sum", period=60),
            _widget(
                8,
                0,
                "Target 5xx rate per colour (%)",
                region,
                rate,
                stat="Sum",
                period=60,
                annotations={"horizontal": [{"label": "alarm", "value": threshold}]},
            ),
            _widget(
                16,
                0,
                "p99 response time per colour (s)",
                region,
                by_colour("TargetResponseTime"),
                stat="p99",
                period=60,
            ),
            _widget(
                0, 6, "Healthy targets per colour", region, by_colour("HealthyHostCount"), stat="Minimum", period=60
            ),
            _widget(
                8,
                6,
                "Load balancer 5xx and unhealthy targets",
                region,
                [[ELB, "HTTPCode_ELB_5XX_Count", "LoadBalancer", lb, {"label": "load balancer 5xx", "stat": "Sum"}]]
                + [
                    [ELB, "UnHealthyHostCount", "TargetGroup", tg, "LoadBalancer", lb, {"label": f"{c} unhealthy"}]
                    for c, tg in per_tg
                ],
                stat="Maximum",
                period=60,
            ),
            _widget(16, 6, "Requests per target", region, by_colour("RequestCountPerTarget"), stat="Sum", period=60),
        ]
    if db:
        dims = ["DBInstanceIdentifier", db]
        widgets += [
            _widget(
                0, 12, "Database CPU (%)", region, [["AWS/RDS", "CPUUtilization", *dims]], stat="Average", period=60
            ),
            _widget(
                8,
                12,
                "Database connections",
                region,
                [["AWS/RDS", "DatabaseConnections", *dims]],
                stat="Maximum",
                period=60,
            ),
            _widget(
                16,
                12,
                "Database free storage (bytes)",
                region,
                [["AWS/RDS", "FreeStorageSpace", *dims]],
                stat="Minimum",
                period=300,
            ),
        ]
    if cluster and services:
        per_service = [(c, services[c]) for c in COLORS if c in services]

        def by_service(namespace, name):
            return [[namespace, name, "ClusterName", cluster, "ServiceName", s, {"label": c}] for c, s in per_service]

        widgets += [
            _widget(
                0,
                18,
                "Service CPU per colour (%)",
                region,
                by_service("AWS/ECS", "CPUUtilization"),
                stat="Average",
                period=60,
            ),
            _widget(
                8,
                18,
                "Service memory per colour (%)",
                region,
                by_service("AWS/ECS", "MemoryUtilization"),
                stat="Average",
                period=60,
            ),
            _widget(
                16,
                18,
                "Running tasks per colour",
                region,
                by_service("ECS/ContainerInsights", "RunningTaskCount"),
                stat="Average",
                period=60,
            ),
        ]
    if not widgets:
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 2,
                "properties": {"markdown": "Nothing of the environment to show yet: provision it first."},
            }
        )
    return {"widgets": widgets}


class FilterModule:
    def filters(self):
        return {"dashboard_body": dashboard_body}
