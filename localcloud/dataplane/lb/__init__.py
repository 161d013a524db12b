"""The load balancer of the local cloud: every ALB listener of the AWS API becomes a local port.

:class:`LoadBalancerPlane` reads the load balancers, listeners, rules and target groups from the
local AWS API every ``poll_interval`` and serves each listener on a loopback port with aiohttp,
routing each request by the listener's rules to a target of the shared
:class:`~localcloud.dataplane.registry.TargetRegistry` (whose health
:mod:`localcloud.dataplane.health` decides). What it emulates of ALB, and why it is aiohttp rather
than HAProxy or Envoy: ``docs/local-cloud.md``, "The load balancer".

- :mod:`~localcloud.dataplane.lb.model`: listeners, rules, actions and target groups as the API
  describes them, parsed; rule conditions, redirect templates, the weighted choice of a group.
- :mod:`~localcloud.dataplane.lb.apiread`: reading them from the API (blocking boto3 calls).
- :mod:`~localcloud.dataplane.lb.proxy`: forwarding one request to a target, and ALB's error pages.
- :mod:`~localcloud.dataplane.lb.server`: :class:`LoadBalancerPlane`: the event loop, the local
  ports, routing, and ``status()``.
"""

from __future__ import annotations

from localcloud.dataplane.lb.model import (
    FixedResponse,
    Forward,
    RequestFacts,
    SmoothWeighted,
    parse_actions,
    parse_condition,
    redirect_location,
)
from localcloud.dataplane.lb.server import LoadBalancerPlane

__all__ = [
    "FixedResponse",
    "Forward",
    "LoadBalancerPlane",
    "RequestFacts",
    "SmoothWeighted",
    "parse_actions",
    "parse_condition",
    "redirect_location",
]
