"""The local AWS API: a moto server with the emulator fixes of ``localcloud.moto_patches`` applied.

Run in the foreground with ``python -m localcloud.awsapi --port 4566``; ``localcloud up`` starts it
in the background. Running moto in-process (rather than the ``moto_server`` script) is what lets
the local cloud correct the emulator where it deviates from AWS, in one documented place.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

# Must be set before moto is imported: attaching AWS managed policies (such as
# AmazonECSTaskExecutionRolePolicy) fails with NoSuchEntity otherwise.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
# ACM issues a DNS-validated certificate after this many seconds (AWS: once the record resolves).
os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "2")


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from localcloud import moto_patches

    moto_patches.apply()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"localcloud AWS API listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.awsapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("the local AWS API only listens on loopback addresses")
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
