"""How long a PostgreSQL server may keep a call waiting: libpq's link settings, and a deadline
on statements kept by the client for a server that cannot keep its own.

:func:`link_parameters` gives libpq the connection timeout and TCP keepalives (``keepalives_*``
and ``tcp_user_timeout``, libpq's "Connection Strings" section) that find an idle connection
whose server vanished.

The server's ``statement_timeout`` cancels a slow statement on a server that runs; a server that
is frozen (stopped, swapping, a virtual machine paused) or whose machine vanished without closing
its connections answers nothing at all, and libpq would wait on the socket for as long as TCP
lets it. :class:`StatementWatch` holds the deadline of the statement in progress on one
connection; a watcher thread shuts that connection's socket down when the deadline passes, so
the waiting call fails at once like any broken connection (and the next call connects again).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time

from psycopg.conninfo import conninfo_to_dict

from broadcaster.store.db import ConnectionLimits


def link_parameters(url: str, limits: ConnectionLimits) -> dict[str, int]:
    """The libpq connection timeout and TCP keepalive parameters of ``limits``, except those
    ``url`` sets itself (libpq ignores the keepalive ones on a unix socket)."""
    wanted = {
        "connect_timeout": max(2, math.ceil(limits.statement_timeout)),
        "keepalives": 1,
        "keepalives_idle": limits.keepalive_idle,
        "keepalives_interval": limits.keepalive_interval,
        "keepalives_count": limits.keepalive_count,
        "tcp_user_timeout": 1000
        * (limits.keepalive_idle + limits.keepalive_interval * limits.keepalive_count),
    }
    given = conninfo_to_dict(url)
    return {key: value for key, value in wanted.items() if key not in given}


def cut(fd: int) -> None:
    """Shut down the connection on socket ``fd`` without closing ``fd`` (its owner still
    holds it): a read waiting on it returns end of file."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return  # closed meanwhile: nothing is waiting on it
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more
    finally:
        sock.close()


class StatementWatch:
    """Cuts the connection of a statement that outlives ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        """Whether the last statement watched was cut for its time (read after it failed)."""
        self._cond = threading.Condition(threading.Lock())
        self._deadline: float | None = None
        self._fd = -1
        self._idle = False
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name="pg-deadline", daemon=True)
        self._thread.start()

    def statement(self, fd: int) -> StatementWatch:
        """Watch the statement run in the ``with`` block, on the connection of socket ``fd``."""
        self._fd = fd
        return self

    def __enter__(self) -> None:
        with self._cond:
            self._deadline = time.monotonic() + self.seconds
            self.expired = False
            if self._idle:
                self._cond.notify()

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._deadline = None

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    # A later statement only moves the deadline later: waking at this one's
                    # deadline and looking again is enough, so arming never needs to wake us.
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self.expired = True
                cut(self._fd)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
