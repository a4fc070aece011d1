"""MemoryTargets: a :class:`~broadcaster.channel.TargetDirectory` kept in a dict, for testing a
channel without the server's store. ``registry`` targets are listed but cannot be unregistered,
as registry-file rows in the store."""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.delivery import Target


class MemoryTargets:
    """The targets of one channel, in memory."""

    def __init__(self, registry: Iterable[Target] = ()) -> None:
        self.registry = {target.id: target for target in registry}
        self.targets: dict[str, Target] = {}

    async def register(self, target: Target) -> None:
        self.targets[target.id] = target

    async def unregister(self, target_id: str) -> bool:
        return self.targets.pop(target_id, None) is not None

    async def get(self, target_id: str) -> Target | None:
        return self.targets.get(target_id) or self.registry.get(target_id)

    async def all(self) -> list[Target]:
        return sorted((self.registry | self.targets).values(), key=lambda t: t.id)
