"""The local load balancer, for real: the moto server as the AWS API, aiohttp servers on loopback
addresses as the tasks, HTTP(S) through the local ports."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter

import pytest
from multidict import CIMultiDict

from localcloud.dataplane.lb.model import (
    FixedResponse,
    Forward,
    RequestFacts,
    SmoothWeighted,
    parse_actions,
    parse_condition,
    redirect_location,
)
from localcloud.dataplane.registry import Health
from tests.dataplane.conftest import LB_REDIRECT_TO_HTTPS, LbClient, lb_forward, lb_free_port, lb_wait_until

pytestmark = pytest.mark.timeout(60)


def register(plane, group_arn, *backends, wait_healthy=True):
    for backend in backends:
        plane.registry.register(group_arn, backend.ip, backend.port, f"task-{backend.name}-{backend.port}")
    if wait_healthy:
        wanted = {(b.ip, b.port) for b in backends}
        lb_wait_until(
            lambda: wanted <= {(t.ip, t.port) for t in plane.registry.targets(group_arn) if t.health is Health.HEALTHY},
            timeout=10,
        )


def https_client(plane, port=443):
    return LbClient(plane.ports[port], https=True, cafile=plane.status()["tls_certificate"])


@pytest.fixture
def blue_green(lb_cloud, lb_backends):
    """A load balancer with blue and green target groups, one task each, the platform's listeners:
    80 redirecting to 443, 443 forwarding blue 100 / green 0."""
    blue = lb_cloud.target_group("blue")
    green = lb_cloud.target_group("green")
    lb = lb_cloud.load_balancer("shop")
    http_arn = lb_cloud.listener(lb, 80, LB_REDIRECT_TO_HTTPS)
    https_arn = lb_cloud.listener(lb, 443, lb_forward((blue, 100), (green, 0)))
    return {
        "blue": blue,
        "green": green,
        "lb": lb,
        "http": http_arn,
        "https": https_arn,
        "blue_task": lb_backends.start("blue"),
        "green_task": lb_backends.start("green"),
    }


def test_forward_weights_90_10_over_1000_requests(lb_cloud, lb_planes, blue_green):
    lb_cloud.elbv2.modify_listener(
        ListenerArn=blue_green["https"],
        DefaultActions=lb_forward((blue_green["blue"], 90), (blue_green["green"], 10)),
    )
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    register(plane, blue_green["green"], blue_green["green_task"])
    client = https_client(plane)
    try:
        seen = Counter(client.get("/").json()["deployment"] for _ in range(1000))
    finally:
        client.close()
    print(f"90/10 over 1000 requests: {dict(seen)}")
    assert sum(seen.values()) == 1000
    assert 70 <= seen["green"] <= 130, seen


def test_modify_listener_takes_effect_within_a_second(lb_cloud, lb_planes, blue_green):
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    register(plane, blue_green["green"], blue_green["green_task"])
    client = https_client(plane)
    try:
        assert client.get("/").json()["deployment"] == "blue"
        lb_cloud.elbv2.modify_listener(
            ListenerArn=blue_green["https"],
            DefaultActions=lb_forward((blue_green["blue"], 0), (blue_green["green"], 100)),
        )
        changed = time.monotonic()
        while client.get("/").json()["deployment"] != "green":
            assert time.monotonic() - changed < 5, "the listener change never took effect"
            time.sleep(0.01)
        latency = time.monotonic() - changed
        print(f"modify_listener -> first response from green: {latency * 1000:.0f} ms")
        assert latency < 2.0
        assert all(client.get("/").json()["deployment"] == "green" for _ in range(20))
    finally:
        client.close()


def test_http_redirects_to_the_local_https_port(lb_planes, blue_green):
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    client = LbClient(plane.ports[80])
    try:
        response = client.get("/items/7?a=1&b=x%20y", headers={"Host": "shop.example.com"})
        assert response.status == 301
        assert response.headers["location"] == f"https://shop.example.com:{plane.ports[443]}/items/7?a=1&b=x%20y"
        response = client.get("/")
        assert response.status == 301
        assert response.headers["location"] == f"https://127.0.0.1:{plane.ports[443]}/"
    finally:
        client.close()
    # Following it reaches the task over TLS, with the local certificate.
    secure = https_client(plane)
    try:
        assert secure.get("/items/7?a=1").json() == {"deployment": "blue", "path": "/items/7?a=1"}
    finally:
        secure.close()
    redirect = next(x for x in plane.status()["listeners"] if x["port"] == 80)["default_action"]
    assert redirect["type"] == "redirect" and redirect["local_port"] == plane.ports[443]


def test_rules_by_priority_path_and_host_then_fixed_response(lb_cloud, lb_planes, blue_green):
    https = blue_green["https"]
    lb_cloud.elbv2.create_rule(
        ListenerArn=https,
        Priority=20,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/admin/*", "/teapot"]}}],
        Actions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "418",
                    "ContentType": "text/plain",
                    "MessageBody": "short and stout",
                },
            }
        ],
    )
    lb_cloud.elbv2.create_rule(
        ListenerArn=https,
        Priority=10,
        Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["green.*.com"]}}],
        Actions=lb_forward((blue_green["green"], 1)),
    )
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    register(plane, blue_green["green"], blue_green["green_task"])
    client = https_client(plane)
    try:
        assert client.get("/").json()["deployment"] == "blue"  # the default action
        teapot = client.get("/admin/users")
        assert (teapot.status, teapot.body, teapot.headers["content-type"]) == (418, b"short and stout", "text/plain")
        assert client.get("/teapot").status == 418
        assert client.get("/teapots").json()["deployment"] == "blue"  # no match: whole path
        green = {"Host": "GREEN.example.com:443"}
        assert client.get("/", headers=green).json()["deployment"] == "green"
        assert client.get("/admin/x", headers=green).json()["deployment"] == "green"  # priority 10 before 20
    finally:
        client.close()
    rules = next(x for x in plane.status()["listeners"] if x["port"] == 443)["rules"]
    assert [(r["priority"], r["action"]["type"]) for r in rules] == [(10, "forward"), (20, "fixed-response")]


def test_fixed_response_default_action(lb_cloud, lb_planes):
    lb = lb_cloud.load_balancer("maintenance")
    lb_cloud.listener(
        lb,
        80,
        [
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "503",
                    "ContentType": "application/json",
                    "MessageBody": '{"maintenance": true}',
                },
            }
        ],
    )
    plane = lb_planes()
    client = LbClient(plane.ports[80])
    try:
        response = client.get("/anything")
        assert response.status == 503
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"maintenance": True}
    finally:
        client.close()


def test_fail_open_when_every_target_is_unhealthy(lb_planes, lb_backends, blue_green):
    sick = [lb_backends.start(f"sick-{n}", health_status=500) for n in (1, 2)]
    plane = lb_planes()
    register(plane, blue_green["blue"], *sick, wait_healthy=False)
    lb_wait_until(
        lambda: [t.health for t in plane.registry.targets(blue_green["blue"])] == [Health.UNHEALTHY] * 2, timeout=10
    )
    client = https_client(plane)
    try:
        served = Counter(client.get("/").json()["deployment"] for _ in range(10))
    finally:
        client.close()
    assert served == {"sick-1": 5, "sick-2": 5}  # both, round-robin
    group = next(g for g in plane.status()["target_groups"] if g["name"] == "blue")
    assert {t["health"] for t in group["targets"]} == {"unhealthy"}
    assert {t["reason"] for t in group["targets"]} == {"Target.ResponseCodeMismatch"}


def test_503_when_the_chosen_group_has_no_routable_target(lb_planes, lb_backends, blue_green, lb_cloud):
    # A group whose checks take long (60 s timeout, 0.05 x in tests: 3 s): its new target stays initial.
    starting = lb_cloud.target_group("starting", HealthCheckIntervalSeconds=120, HealthCheckTimeoutSeconds=60)
    lb_cloud.elbv2.create_rule(
        ListenerArn=blue_green["https"],
        Priority=1,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/starting"]}}],
        Actions=lb_forward((starting, 1)),
    )
    plane = lb_planes()
    client = https_client(plane)
    try:
        response = client.get("/")
        assert response.status == 503  # blue has no target at all
        assert response.headers["server"] == "awselb/2.0"
        assert b"503 Service Temporarily Unavailable" in response.body
        slow_starter = lb_backends.start("slow", health_delay=30)
        register(plane, starting, slow_starter, wait_healthy=False)
        lb_wait_until(lambda: slow_starter.hits.get("/health"), timeout=2)  # being checked
        assert plane.registry.targets(starting)[0].health is Health.INITIAL
        assert client.get("/starting").status == 503
        # Half the weight on green, which has a healthy task: only blue's share fails.
        register(plane, blue_green["green"], blue_green["green_task"])
        lb_cloud.elbv2.modify_listener(
            ListenerArn=blue_green["https"],
            DefaultActions=lb_forward((blue_green["blue"], 50), (blue_green["green"], 50)),
        )
        lb_wait_until(lambda: client.get("/").status == 200, timeout=5)
        statuses = Counter(client.get("/").status for _ in range(40))
        assert statuses == {200: 20, 503: 20}
    finally:
        client.close()


def test_502_when_the_target_connection_breaks_or_is_refused(lb_planes, lb_backends, blue_green):
    broken = lb_backends.start("broken", broken=True)
    plane = lb_planes()
    register(plane, blue_green["blue"], broken)
    client = https_client(plane)
    try:
        response = client.get("/items")
        assert response.status == 502
        assert b"502 Bad Gateway" in response.body
        assert broken.hits.get("/items", 0) >= 1
        # A task whose process is gone: refused connections (it turns unhealthy; fail-open still
        # sends to it, as the only target).
        plane.registry.deregister(blue_green["blue"], broken.ip, broken.port)
        refused_port = lb_free_port("127.0.0.1")
        plane.registry.register(blue_green["blue"], "127.0.0.1", refused_port, "task-gone")
        lb_wait_until(lambda: plane.registry.targets(blue_green["blue"])[0].health is Health.UNHEALTHY, timeout=10)
        assert client.get("/items").status == 502
    finally:
        client.close()


def test_504_when_the_target_is_silent_longer_than_the_idle_timeout(lb_planes, blue_green):
    plane = lb_planes(idle_timeout=0.5)
    register(plane, blue_green["blue"], blue_green["blue_task"])
    client = https_client(plane)
    try:
        started = time.monotonic()
        response = client.get("/slow?s=3")
        waited = time.monotonic() - started
        assert response.status == 504, response
        assert 0.4 < waited < 2.5
        assert client.get("/slow?s=0.1").status == 200  # within the timeout: fine
    finally:
        client.close()


def test_forwarded_headers_host_and_a_streamed_body(lb_planes, blue_green):
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    client = https_client(plane)
    try:
        body = b"x" * 300_000
        echoed = client.request(
            "POST",
            "/echo?q=1",
            body=body,
            headers={"Host": "shop.example.com", "X-Forwarded-For": "203.0.113.7", "Content-Type": "text/plain"},
        ).json()
    finally:
        client.close()
    headers = {}
    for name, value in echoed["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    assert echoed["method"] == "POST" and echoed["path_qs"] == "/echo?q=1"
    assert echoed["body_length"] == len(body)
    assert headers["host"] == ["shop.example.com"]
    assert headers["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["x-forwarded-port"] == ["443"]  # the listener's port, not the local one
    assert headers["content-type"] == ["text/plain"]
    assert headers["x-amzn-trace-id"][0].startswith("Root=1-")
    assert "user-agent" not in headers  # nothing added that the client did not send


def test_draining_target_finishes_in_flight_and_gets_no_new_requests(lb_planes, lb_backends, blue_green):
    first, second = lb_backends.start("first"), lb_backends.start("second")
    plane = lb_planes()
    group = blue_green["blue"]
    register(plane, group, first, second)
    outcome = {}

    def slow_request():
        client = https_client(plane)
        try:
            # Round-robin alternates: of two slow requests one lands on each task.
            outcome["response"] = client.get("/slow?s=2")
        finally:
            client.close()

    threads = [threading.Thread(target=slow_request) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        lb_wait_until(lambda: first.hits.get("/slow") and second.hits.get("/slow"), timeout=5)
        key = (group, first.ip, first.port)
        assert plane.registry.inflight(key) == 1
        assert plane.registry.begin_draining(group, first.ip, first.port)
        status = next(g for g in plane.status()["target_groups"] if g["arn"] == group)
        assert {(t["task_id"].split("-")[1], t["health"], t["inflight"]) for t in status["targets"]} == {
            ("first", "draining", 1),
            ("second", "healthy", 1),
        }
        client = https_client(plane)
        try:
            new = Counter(client.get("/").json()["deployment"] for _ in range(20))
        finally:
            client.close()
        assert new == {"second": 20}
    finally:
        for thread in threads:
            thread.join(timeout=10)
    assert outcome["response"].status == 200
    assert plane.registry.inflight(key) == 0
    assert first.hits["/slow"] == 1


def test_a_second_load_balancer_on_443_gets_the_next_free_local_port(lb_cloud, lb_planes, blue_green):
    other = lb_cloud.load_balancer("other")
    lb_cloud.listener(other, 443, lb_forward((blue_green["green"], 1)))
    base = lb_free_port()
    plane = lb_planes(port_map={80: lb_free_port(), 443: base})
    plane.ports[443] = base
    listeners = {(x["load_balancer"], x["port"]): x for x in plane.status()["listeners"]}
    assert listeners[("shop", 443)]["local_port"] == base  # created first
    assert listeners[("other", 443)]["local_port"] > base
    assert listeners[("other", 443)]["local_url"] == f"https://127.0.0.1:{listeners[('other', 443)]['local_port']}"
    register(plane, blue_green["green"], blue_green["green_task"])
    client = LbClient(listeners[("other", 443)]["local_port"], https=True, cafile=plane.status()["tls_certificate"])
    try:
        assert client.get("/").json()["deployment"] == "green"
    finally:
        client.close()


def test_listeners_that_come_and_go_open_and_close_ports(lb_cloud, lb_planes):
    lb = lb_cloud.load_balancer("later")
    plane = lb_planes(port_map={8080: lb_free_port()})
    assert plane.status()["listeners"] == []
    arn = lb_cloud.listener(lb, 8080, [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "204"}}])
    # Listed as soon as the API shows it; served once its local_port is set (status's contract).
    lb_wait_until(lambda: [li["local_port"] for li in plane.status()["listeners"]] == [plane.ports[8080]], timeout=2)
    client = LbClient(plane.ports[8080])
    assert client.get("/").status == 204
    client.close()
    lb_cloud.elbv2.delete_listener(ListenerArn=arn)
    lb_wait_until(lambda: not plane.status()["listeners"], timeout=2)
    lb_wait_until(lambda: not _accepts(plane.ports[8080]), timeout=2)


def test_status_shape(lb_planes, blue_green):
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    status = plane.status()
    json.dumps(status)  # JSON-able
    https = next(x for x in status["listeners"] if x["port"] == 443)
    assert https["load_balancer"] == "shop"
    assert https["listener_arn"] == blue_green["https"]
    assert https["protocol"] == "HTTPS"
    assert https["local_url"] == f"https://127.0.0.1:{plane.ports[443]}"
    assert https["default_action"]["type"] == "forward"
    assert https["default_action"]["weights"] == {"blue": 100, "green": 0}
    blue = next(g for g in status["target_groups"] if g["name"] == "blue")
    assert blue["arn"] == blue_green["blue"]
    assert blue["health_check"]["path"] == "/health"
    assert blue["health_check"]["healthy_threshold"] == 2
    assert blue["deregistration_delay"] == 300
    task = blue_green["blue_task"]
    assert blue["targets"] == [
        {
            "ip": task.ip,
            "port": task.port,
            "task_id": f"task-blue-{task.port}",
            "health": "healthy",
            "reason": "",
            "inflight": 0,
        }
    ]
    assert status["api"]["ok"] is True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_stop_closes_every_port_and_ends_its_thread(lb_planes, blue_green):
    plane = lb_planes()
    register(plane, blue_green["blue"], blue_green["blue_task"])
    ports = [x["local_port"] for x in plane.status()["listeners"]]
    assert sorted(ports) == sorted(plane.ports.values())
    assert all(_accepts(port) for port in ports)
    client = https_client(plane)  # a keep-alive connection open across the stop
    assert client.get("/").status == 200
    stuck = {}

    def slow_request():
        slow = https_client(plane)
        try:
            stuck["response"] = slow.get("/slow?s=20")
        except (OSError, http.client.HTTPException) as exc:
            stuck["error"] = exc
        finally:
            slow.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    lb_wait_until(lambda: blue_green["blue_task"].hits.get("/slow"), timeout=5)
    started = time.monotonic()
    plane.stop()  # shutdown_grace 0.5 s: the 20 s request is cut off
    stopped_in = time.monotonic() - started
    thread.join(timeout=10)
    assert "error" in stuck, stuck
    assert stopped_in < 5, stopped_in
    assert not any(_accepts(port) for port in ports)
    assert not plane._thread.is_alive()
    assert not [t for t in plane._executor._threads if t.is_alive()]  # the API poller's thread
    with pytest.raises((OSError, http.client.HTTPException)):
        client.get("/")
    client.close()


# ---- the pure parts: no network ----------------------------------------------------------------


def test_smooth_weighted_round_robin_is_exact_and_spread_out():
    picker = SmoothWeighted([("blue", 90), ("green", 10), ("none", 0)])
    picks = [picker.pick() for _ in range(1000)]
    assert Counter(picks) == {"blue": 900, "green": 100}
    assert "green" in picks[:10]  # spread: not 900 blues first
    assert SmoothWeighted([("a", 0)]).pick() is None


def test_redirect_location_templates_and_local_ports():
    local = {443: 8443, 80: 8080}.get

    def location(config, **request):
        facts = {"protocol": "HTTP", "host": "shop.example.com", "port": 80, "raw_path": "/a/b", "raw_query": ""}
        return redirect_location(parse_actions([config]), **{**facts, **request}, local_port_for=local)

    https = {"Type": "redirect", "RedirectConfig": LB_REDIRECT_TO_HTTPS[0]["RedirectConfig"]}
    assert location(https) == "https://shop.example.com:8443/a/b"
    assert location(https, raw_query="x=1&y=%20") == "https://shop.example.com:8443/a/b?x=1&y=%20"
    moved = {
        "Type": "redirect",
        "RedirectConfig": {"Host": "new.example.com", "Path": "/v2/#{path}", "StatusCode": "HTTP_302"},
    }
    assert location(moved) == "http://new.example.com:8080/v2/a/b"
    assert parse_actions([moved]).status_code == "HTTP_302"
    to_default = {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
    assert redirect_location(
        parse_actions([to_default]),
        protocol="HTTP",
        host="h",
        port=80,
        raw_path="/",
        raw_query="q",
        local_port_for=lambda port: port,
    ) == ("https://h/?q")


def test_conditions():
    def facts(**overrides):
        base = {
            "method": "GET",
            "path": "/api/v1/items",
            "host": "api.example.com",
            "headers": CIMultiDict({"User-Agent": "curl/8", "X-Canary": "yes"}),
            "query": (("debug", "1"),),
            "client_ip": "127.0.0.1",
        }
        return RequestFacts(**{**base, **overrides})

    def matches(condition, **overrides):
        return parse_condition(condition).matches(facts(**overrides))

    path = {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/h?alth"]}}
    assert matches(path) and matches(path, path="/health") and not matches(path, path="/API/x")
    legacy_host = {"Field": "host-header", "Values": ["*.EXAMPLE.com"]}
    assert matches(legacy_host) and not matches(legacy_host, host="example.org")
    header = {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "x-canary", "Values": ["Y*"]}}
    assert matches(header) and not matches(header, headers=CIMultiDict())
    method = {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}
    assert not matches(method) and matches(method, method="POST")
    query = {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "debug", "Value": "1"}]}}
    assert matches(query) and not matches(query, query=(("debug", "0"),))
    source = {"Field": "source-ip", "SourceIpConfig": {"Values": ["127.0.0.0/8"]}}
    assert matches(source) and not matches(source, client_ip="10.0.0.1")
    assert not matches({"Field": "something-new", "Values": ["x"]})


def test_terminal_action_and_forward_forms():
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"
    assert parse_actions([{"Type": "forward", "TargetGroupArn": arn}]) == Forward(((arn, 1),))
    assert parse_actions(lb_forward((arn, 0))) == Forward(((arn, 0),))
    with_auth = [
        {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {}},
        {"Type": "fixed-response", "Order": 2, "FixedResponseConfig": {"StatusCode": "200"}},
    ]
    assert parse_actions(with_auth) == FixedResponse("200", "text/plain", "")
