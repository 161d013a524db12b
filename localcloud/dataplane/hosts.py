"""Loopback addresses for tasks and databases, and the names tasks resolve that no DNS server knows.

Each task gets its own 127.x.y.z (on Linux all of 127.0.0.0/8 is the loopback interface, so any
of them can be bound with no set-up), which stands for the task's own network interface: every
task listens on its container port, as on Fargate. Databases get addresses of their own too.

An RDS endpoint (``NAME.aaaaaaaaaa.REGION.rds.amazonaws.com``) resolves nowhere. The data plane
keeps a hosts file (``/etc/hosts`` format) mapping such names to the local servers, and every task
process loads :func:`install` through ``taskenv/sitecustomize.py``: it answers
``socket.getaddrinfo`` (which psycopg 3 calls before handing libpq the address), ``gethostbyname``
and ``gethostbyname_ex`` for the names in the file, and leaves every other name to the system
resolver: the equivalent of a container's ``/etc/hosts``. The app keeps using ``DB_HOST`` as given.

Standard library only: task processes load this file by path, without the ``localcloud`` package.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

HOSTS_FILE_ENV = "LOCALCLOUD_HOSTS_FILE"
# Where local clouds on this machine claim addresses (several run side by side: tests, a developer's).
ADDRESS_LOCKS_ENV = "LOCALCLOUD_ADDRESS_LOCKS"
TASK_NETWORK = "127.1.0.0/16"
DATABASE_NETWORK = "127.0.5.0/24"


class AddressPool:
    """Hands out the addresses of a loopback network, lowest free first, and takes them back.

    Local clouds running side by side on one machine share the networks: each address handed out is
    claimed machine-wide with an exclusive ``flock`` on a file of its own (in ``LOCALCLOUD_ADDRESS_LOCKS``,
    else ``<tmp>/localcloud-addresses``), held until it is released or the process ends, so that two
    clouds never hand out the same address, even between the moment one checks an address is free and
    the moment its task binds it. The last octet skips 0 and 255 so no address looks like a network or
    broadcast address.
    """

    def __init__(self, network: str, lock_dir: str | os.PathLike | None = None):
        self.network = ipaddress.ip_network(network)
        if not self.network.is_loopback:
            raise ValueError(f"{network} is not a loopback network")
        self._taken: set[str] = set()
        self._claims: dict[str, int] = {}  # address -> the descriptor holding its machine-wide lock
        self._lock = threading.Lock()
        default = Path(tempfile.gettempdir()) / "localcloud-addresses"
        self._lock_dir = Path(lock_dir or os.environ.get(ADDRESS_LOCKS_ENV) or default)

    def _candidates(self) -> Iterable[str]:
        for address in self.network.hosts():
            if address.packed[-1] not in (0, 255):
                yield str(address)

    def _claim(self, ip: str) -> bool:
        """Take the machine-wide lock of ``ip``; False when another pool (another cloud) holds it."""
        if not self._lock_dir.is_dir():
            self._lock_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self._lock_dir, 0o1777)  # noqa: S103 - shared by every user's clouds, sticky like /tmp
        descriptor = os.open(self._lock_dir / ip, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._claims[ip] = descriptor
        return True

    def _unclaim(self, ip: str) -> None:
        descriptor = self._claims.pop(ip, None)
        if descriptor is not None:
            os.close(descriptor)  # closing the descriptor releases its lock

    def allocate(self, usable: Callable[[str], bool] | None = None) -> str:
        """The lowest free address; ``usable(ip)``, if given, may refuse one (e.g. "something
        else listens on its port"), which is then skipped this time and tried again next time."""
        with self._lock:
            for ip in self._candidates():
                if ip in self._taken or not self._claim(ip):
                    continue
                if usable is not None and not usable(ip):
                    self._unclaim(ip)
                    continue
                self._taken.add(ip)
                return ip
        raise RuntimeError(f"no free address left in {self.network}")

    def claim(self, ip: str) -> None:
        """Mark an address as taken (one handed out before, e.g. by a previous run)."""
        with self._lock:
            self._taken.add(ip)
            if ip not in self._claims:
                self._claim(ip)

    def release(self, ip: str) -> None:
        with self._lock:
            self._taken.discard(ip)
            self._unclaim(ip)

    def in_use(self) -> set[str]:
        with self._lock:
            return set(self._taken)


def port_is_free(ip: str, port: int) -> bool:
    """Whether ``ip:port`` can be bound right now (nothing else listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def normalize(name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.strip().rstrip(".").lower()


def parse_hosts(text: str) -> dict[str, str]:
    """``/etc/hosts`` lines (``ip name [alias...]``, ``#`` comments) as {name: ip}; the first wins."""
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ip = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            mapping.setdefault(normalize(name), ip)
    return mapping


def write_hosts(path: Path, mapping: dict[str, str]) -> None:
    """Replace the hosts file atomically (readers see the old or the new file, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# written by the localcloud data plane: RDS endpoints -> local servers"]
    lines += [f"{ip} {name}" for name, ip in sorted(mapping.items())]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.chmod(0o644)
    os.replace(temporary, path)


class HostsFile:
    """Reads the hosts file again whenever it changes (checked by mtime and size on each lookup)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._mapping: dict[str, str] = {}
        self._lock = threading.Lock()

    def lookup(self, name: str | bytes) -> str | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        with self._lock:
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                try:
                    self._mapping = parse_hosts(self.path.read_text())
                except OSError:
                    return None
                self._stamp = (stat.st_mtime_ns, stat.st_size)
            return self._mapping.get(normalize(name))


_installed: HostsFile | None = None


def install(path: str | os.PathLike) -> None:
    """Answer the names of ``path`` in this process's resolver functions (idempotent)."""
    global _installed
    if _installed is not None:
        _installed = HostsFile(path)
        return
    _installed = HostsFile(path)
    system_getaddrinfo = socket.getaddrinfo
    system_gethostbyname = socket.gethostbyname
    system_gethostbyname_ex = socket.gethostbyname_ex

    def mapped(host):
        if host is None or _installed is None:
            return None
        return _installed.lookup(host)

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: PLR0917 - socket.getaddrinfo's signature
        return system_getaddrinfo(mapped(host) or host, port, family, type, proto, flags)

    def gethostbyname(hostname):
        return mapped(hostname) or system_gethostbyname(hostname)

    def gethostbyname_ex(hostname):
        ip = mapped(hostname)
        if ip is None:
            return system_gethostbyname_ex(hostname)
        return (normalize(hostname), [], [ip])

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
