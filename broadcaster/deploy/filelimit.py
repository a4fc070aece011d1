"""The server's open-file limit, raised at start to the most the system allows it.

Every TCP box, every box downloading its audio, every API client and every device session is an
open socket, and the render's pipes, the store and the logs are open files. systemd starts a
service with a soft limit of 1,024 open files (``DefaultLimitNOFILE=1024:524288``, kept low for
programs that still use ``select()``) and leaves it to a program that can use more to raise it
(systemd's NEWS for v240). Python does not, so a county server would stop accepting boxes and
downloads at about a thousand: the boxes beyond it would stay silent. The server uses epoll
only, so ``serve`` raises its soft limit to the hard one (getrlimit/setrlimit, POSIX) and
reports both; ``systemd/broadcaster.service`` sets the hard limit (``LimitNOFILE``).
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileLimit:
    """The soft open-file limit before and after :func:`raise_open_file_limit`, and the hard
    one (``resource.RLIM_INFINITY`` when the system sets none)."""

    before: int
    soft: int
    hard: int


def raise_open_file_limit() -> FileLimit:
    """Raise this process's soft open-file limit to its hard limit, when the system lets it;
    what the limits are then. Never raises: a system that refuses keeps the limit it had."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return FileLimit(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return FileLimit(soft, soft, hard)
    return FileLimit(soft, hard, hard)
