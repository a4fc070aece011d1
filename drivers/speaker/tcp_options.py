"""Socket options for both ends of the TCP transport (docs/protocols/speaker.md, section 4.1).

Boxes sit behind NAT and 4G routers that drop idle mappings without a word; with the kernel's
defaults a dead connection goes unnoticed for hours. Keepalive probes after 30 s idle and a
60 s user timeout make both the box and the hub notice within about a minute, so the box
reconnects and the hub reports it offline.
"""

from __future__ import annotations

import socket

KEEPALIVE_IDLE_S = 30
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_PROBES = 3
USER_TIMEOUT_MS = 60_000


def enable_keepalive(sock: socket.socket | None) -> None:
    """Detect a silently dead path (NAT timeouts on 4G) within about a minute, not the
    kernel's default of hours: TCP keepalive probes and, on Linux, a user timeout."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    )
    for option, value in options:
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
