"""A name resolver answering from a table, like ``/etc/hosts``, for tests on a machine without
DNS: names of push services, and names an attacker points at loopback, changed at will to play
DNS rebinding."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class HostsResolver(AbstractResolver):
    """``table`` maps a name to its addresses; ``asked`` lists every name looked up."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = self.table.get(host)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: name not known")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        self.asked.clear()
