"""A device that one node at a time may use: opened only under its lease, closed when lost.

Channels whose devices take one user (an RDS encoder's link, a GSM modem pool, a serial port)
wrap them in a :class:`LeasedDevice` with the :class:`DeviceLeaseHolder` of their context
(``ChannelContext.leases``). ``start`` opens the device if this node gets its lease; a keeper
task then renews the lease three times per lease period, and

- closes the device when the lease is lost (another node took it after this node was silent
  longer than the lease), or before it can be lost, when renewing has failed for two thirds
  of the lease (the database is unreachable), and
- opens it when a lease held by another node becomes free (that node stopped or died).

While another node holds the device, :meth:`LeasedDevice.check` raises
:class:`~broadcaster.errors.DeviceElsewhereError` naming it: the dispatcher queues the delivery
again at once for that node only. When no node holds it (its holder stopped and no other node
could open it yet), it raises :class:`~broadcaster.errors.DeviceUnavailableError` and the
delivery is retried after a third of the lease. :attr:`LeasedDevice.elsewhere` names the other
node holding it as of the last look (at each renewal): a channel whose whole work needs this one
device returns it from ``Channel.sends_elsewhere`` so that this node claims none of its
deliveries meanwhile. Without leases (no shared store) the device is simply opened at start
and closed at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from broadcaster.errors import DeviceElsewhereError, DeviceUnavailableError

log = logging.getLogger(__name__)


class DeviceLeaseHolder(Protocol):
    """Leases on devices that one node at a time may use (an encoder link, a modem).

    Acquire a device's lease before opening it and call ``acquire`` again well within
    ``seconds`` to keep it; when it returns False another node holds the device: close it.
    """

    @property
    def node(self) -> str: ...

    @property
    def seconds(self) -> float: ...

    async def acquire(self, resource: str) -> bool: ...

    async def release(self, resource: str) -> None: ...

    async def holder(self, resource: str) -> str | None: ...


Step = Callable[[], Awaitable[None]]


class LeasedDevice:
    """Opens ``resource`` through ``open`` while this node holds its lease."""

    def __init__(
        self,
        leases: DeviceLeaseHolder | None,
        resource: str,
        *,
        open_device: Step,
        close_device: Step,
        what: str,
    ) -> None:
        self._leases = leases
        self.resource = resource
        self._open = open_device
        self._close = close_device
        self.what = what
        self.held = False
        self.elsewhere: str | None = None
        """The node that held the device at this node's last look at its lease, when not
        this node (looked at each renewal, every third of the lease), else None."""
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the device if its lease is this node's (errors of ``open`` propagate), and
        keep watching the lease."""
        if self._leases is None or await self._leases.acquire(self.resource):
            await self._open()
            self.held = True
        else:
            await self._look_elsewhere(self._leases)
        if self._leases is not None:
            self._keeper = asyncio.get_running_loop().create_task(
                self._keep(self._leases), name=f"lease {self.resource}"
            )

    async def stop(self) -> None:
        """Close the device and give its lease up."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        self.elsewhere = None
        if self.held:
            self.held = False
            await self._close()
        if self._leases is not None:
            await self._leases.release(self.resource)

    async def check(self) -> None:
        """Raise DeviceElsewhereError naming the node that holds the device, or
        DeviceUnavailableError when no node holds it, unless this node holds it."""
        if self.held:
            return
        holder = await self._leases.holder(self.resource) if self._leases else None
        if self._leases is not None:
            self.elsewhere = holder if holder != self._leases.node else None
        by = f"node {holder}" if holder else "another node"
        retry = self._leases.seconds / 3 if self._leases else None
        message = f"{self.what} is used by {by}"
        if holder and self._leases is not None and holder != self._leases.node:
            raise DeviceElsewhereError(message, holder, retry_after=retry)
        raise DeviceUnavailableError(message, retry_after=retry)

    async def _keep(self, leases: DeviceLeaseHolder) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(leases.seconds / 3)
            try:
                mine = await leases.acquire(self.resource)
            except Exception as exc:  # the store is unreachable: try again, then let go
                log.warning("%s: cannot renew its lease: %s", self.what, exc)
                if self.held and loop.time() - renewed >= leases.seconds * 2 / 3:
                    # Before the lease runs out, so that no other node opens it meanwhile.
                    log.warning("%s: closing it, as its lease cannot be renewed", self.what)
                    self.held = False
                    await self._closed_quietly()
                continue
            renewed = loop.time()
            if mine:
                self.elsewhere = None
            else:
                await self._look_elsewhere(leases)
            if self.held and not mine:
                log.warning("%s: lease lost to another node; closing it", self.what)
                self.held = False
                await self._closed_quietly()
            elif mine and not self.held:
                try:
                    await self._open()
                except Exception as exc:
                    log.warning("%s: cannot open it: %s", self.what, exc)
                    await leases.release(self.resource)
                    continue
                log.info("%s: this node holds it now", self.what)
                self.held = True

    async def _look_elsewhere(self, leases: DeviceLeaseHolder) -> None:
        """Note which other node holds the device (None: no node, or the store cannot say)."""
        try:
            holder = await leases.holder(self.resource)
        except Exception as exc:
            log.warning("%s: cannot tell which node holds it: %s", self.what, exc)
            holder = None
        self.elsewhere = holder if holder != leases.node else None

    async def _closed_quietly(self) -> None:
        try:
            await self._close()
        except Exception:
            log.exception("%s: closing it failed", self.what)
