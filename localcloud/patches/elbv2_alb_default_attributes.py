"""An application load balancer reports AWS's default attributes (idle timeout 60 s, HTTP/2 on,
desync mitigation "defensive", ...). moto leaves several out, and amazon.aws.elb_application_lb
fails reading them (KeyError idle_timeout_timeout_seconds)."""

from __future__ import annotations

from moto.elbv2.models import FakeLoadBalancer

ALB_DEFAULTS = {
    "access_logs.s3.enabled": "false",
    "idle_timeout.timeout_seconds": "60",
    "client_keep_alive.seconds": "3600",
    "load_balancing.cross_zone.enabled": "true",
    "routing.http2.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "waf.fail_open.enabled": "false",
}


def apply() -> None:
    init = FakeLoadBalancer.__init__

    def init_with_alb_defaults(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.type == "application":
            self.attrs = {**ALB_DEFAULTS, **self.attrs, "load_balancing.cross_zone.enabled": "true"}

    FakeLoadBalancer.__init__ = init_with_alb_defaults
