"""Forwarding one request to a target, as ALB does over HTTP/1.1: hop-by-hop headers dropped,
``X-Forwarded-*`` added, the body streamed both ways, and the load balancer's own error pages."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from localcloud.dataplane.lb.model import ListenerConfig
from localcloud.dataplane.registry import Target

LOG = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # ALB gives up connecting to a target after 10 s (HTTP 504)
LB_SERVER = "awselb/2.0"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
REASONS = {
    400: "Bad Request",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


class _ProxiedResponse(web.StreamResponse):
    """A streamed response whose headers leave with its first body bytes: one send, not two, for
    the usual small response (aiohttp's own Response does the same)."""

    _send_headers_immediately = False


def lb_error(status: int) -> web.Response:
    """The load balancer's own error page, as ALB words it."""
    reason = REASONS.get(status, "Error")
    title = f"{status} {reason}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(
        status=status, reason=reason, text=body, content_type="text/html", headers={"Server": LB_SERVER}
    )


def host_without_port(host: str) -> str:
    """A Host header's host, lower case, without its port (``[::1]:8443`` -> ``[::1]``)."""
    host = host.strip()
    if host.startswith("["):  # [::1]:8443
        return host[: host.find("]") + 1].lower() if "]" in host else host.lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


async def proxy(
    session: aiohttp.ClientSession,
    request: web.BaseRequest,
    listener: ListenerConfig,
    target: Target,
    idle: float,
    *,
    answered: Callable[[tuple[int, float]], None] | None = None,
) -> web.StreamResponse:
    """Forward the request to the target and stream the response back (504 when the target does not
    connect in time or is silent for ``idle`` seconds, 502 when it fails before the response).
    ``answered((status, seconds))`` hears the target's status and the seconds from sending the
    request to its response headers (ALB's TargetResponseTime); not called when the load balancer
    answers itself."""
    headers = _upstream_headers(request, listener)
    expects = request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1)
    if expects and request.transport is not None:  # the body follows once asked for
        request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    rel = request.rel_url
    url = URL.build(
        scheme="http",
        host=target.ip,
        port=target.port,
        path=rel.raw_path,
        query_string=rel.raw_query_string,
        encoded=True,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=idle)
    sent = time.perf_counter()
    try:
        upstream = await session.request(
            request.method,
            url,
            headers=headers,
            data=request.content if request.body_exists else None,
            allow_redirects=False,
            timeout=timeout,
        )
    except TimeoutError:
        return lb_error(504)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        LOG.debug("target %s failed: %s", target.address, exc)
        return lb_error(502)
    if answered is not None:
        answered((upstream.status, time.perf_counter() - sent))

    response = _ProxiedResponse(status=upstream.status, reason=upstream.reason)
    connection_tokens = {t.strip().lower() for t in upstream.headers.get("Connection", "").split(",")}
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in connection_tokens:
            response.headers.add(name, value)
    try:
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        # The status is sent already: all that is left is to cut the client's connection, so
        # that it sees a truncated response rather than a complete-looking one.
        LOG.debug("response from %s broke off: %s", target.address, exc)
        upstream.close()
        if request.transport is not None:
            request.transport.abort()
        return response
    upstream.release()
    return response


def _upstream_headers(request: web.BaseRequest, listener: ListenerConfig) -> CIMultiDict:
    """The request's headers as the target gets them: hop-by-hop ones dropped, ``X-Forwarded-*`` and
    ``X-Amzn-Trace-Id`` set as ALB sets them."""
    connection_tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    headers: CIMultiDict = CIMultiDict()
    forwarded_for = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in connection_tokens or lower == "expect":
            continue
        if lower == "x-forwarded-for":
            forwarded_for.append(value)
            continue
        if lower in ("x-forwarded-proto", "x-forwarded-port"):
            continue
        headers.add(name, value)
    forwarded_for.append(request.remote or "")
    headers["X-Forwarded-For"] = ", ".join(part for part in forwarded_for if part)
    headers["X-Forwarded-Proto"] = listener.protocol.lower()
    headers["X-Forwarded-Port"] = str(listener.port)
    if "X-Amzn-Trace-Id" not in headers:
        headers["X-Amzn-Trace-Id"] = f"Root=1-{int(time.time()):08x}-{random.getrandbits(96):024x}"  # noqa: S311
    return headers
