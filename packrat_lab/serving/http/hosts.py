"""Which Host headers a loopback server answers (DNS rebinding guard), and the warning for open binds."""

from __future__ import annotations

import ipaddress
import logging
import sys

__all__ = ["allowed_hosts", "is_loopback", "warn_if_exposed"]

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_log = logging.getLogger("packrat_lab.http")


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name, IPv6 with or without brackets) is this machine only."""
    name = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name in LOOPBACK_NAMES


def allowed_hosts(port: int) -> frozenset[str]:
    """Host header values a loopback server on `port` accepts (lower case); the bare name only on 80."""
    names = ("127.0.0.1", "localhost", "[::1]")
    hosts = {f"{n}:{port}" for n in names}
    if port == 80:
        hosts |= set(names)
    return frozenset(hosts)


def warn_if_exposed(host: str, port: int) -> bool:
    """Warn loudly (stderr and logging) when the bind is reachable from other machines; True if so."""
    if is_loopback(host):
        return False
    msg = (
        f"WARNING: packrat-lab is listening on {host or '*'}:{port}, reachable from other machines: "
        "inference and read routes need no token and there is no TLS; bind 127.0.0.1 unless you mean it"
    )
    print(msg, file=sys.stderr, flush=True)
    _log.warning(msg)
    return True
