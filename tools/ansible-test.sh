#!/usr/bin/env bash
# Run ansible-test on a copy of the collection laid out as ansible_collections/ecs_production/platform,
# which ansible-test requires. Usage: tools/ansible-test.sh sanity [args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/ecs_production/platform"
mkdir -p "$dest"
# Only what the built collection holds (git-tracked files minus galaxy.yml's build_ignore).
(cd "$here" && git ls-files -co --exclude-standard -z -- galaxy.yml meta plugins roles playbooks docs tests/unit tests/sanity README.md LICENSE changelogs 2>/dev/null) \
  | (cd "$here" && xargs -0 -I{} cp --parents {} "$dest")
# ansible-test needs to find amazon.aws and community.aws beside us.
ln -s "$(python -c 'import ansible_collections.amazon.aws, os; print(os.path.dirname(ansible_collections.amazon.aws.__path__[0]))')" "$work/ansible_collections/amazon"
ln -s "$(python -c 'import ansible_collections.community.aws, os; print(os.path.dirname(ansible_collections.community.aws.__path__[0]))')" "$work/ansible_collections/community"
# ansible-test bootstraps pip in its venvs with a script from ci-files.testing.ansible.com, which
# is not reachable from CI. Stand in for it with the interpreter's own ensurepip plus PyPI.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for version in 24.2 25.0 25.1 25.2; do
  script="$cache/get_pip_${version//./_}.py"
  cat > "$script" <<'PY'
import ensurepip, os, subprocess, sys
ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip leaves it pointing at /dev/null
# ansible-test runs pip with a trimmed environment: carry the machine's CA bundle into the venv.
bundle = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
if os.path.isfile(bundle):
    with open(os.path.join(sys.prefix, "pip.conf"), "w") as conf:
        conf.write("[global]\ncert = %s\n" % bundle)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
PY
done
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1 || true
exec ansible-test "$@"
