"""Provision benchmark: wall seconds and AWS API calls, against a fresh local AWS API, for
provision from empty, a no-op re-run, --check on the provisioned account, and teardown.

    python bench/provision.py [--runs N]

Figures, not assertions: the machine is shared, so compare phases within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localcloud.awsapi import AwsApiProcess  # noqa: E402

RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", re.M)
PHASES = [
    ("provision from empty", "provision", []),
    ("no-op re-run", "provision", []),
    ("--check, provisioned", "provision", ["--check", "--diff"]),
    ("teardown", "teardown", []),
]


def run_phase(api: AwsApiProcess, playbook: str, args: list[str]) -> tuple[float, int, int]:
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=api.endpoint_url,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    calls_before = api.request_count()
    started = time.perf_counter()
    result = subprocess.run(
        ["ansible-playbook", f"playbooks/{playbook}.yml", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{playbook} {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}")
    changed = int(RECAP.findall(result.stdout)[-1][1])
    return wall, api.request_count() - calls_before, changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole cycle this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        api = AwsApiProcess(Path(tmp) / "awsapi.log")
        try:
            print(f"local AWS API {api.endpoint_url}; ansible-playbook from {Path(sys.executable).parent}")
            print(f"{'run':>3}  {'phase':<22} {'wall s':>7} {'API calls':>9} {'changed':>7}")
            for run in range(1, args.runs + 1):
                api.reset()
                for label, playbook, extra in PHASES:
                    wall, calls, changed = run_phase(api, playbook, extra)
                    print(f"{run:>3}  {label:<22} {wall:>7.1f} {calls:>9} {changed:>7}", flush=True)
        finally:
            api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
