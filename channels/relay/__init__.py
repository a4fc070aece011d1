"""The ``relay`` channel: alerts to county nodes as signed CAP 1.2 (see ``README.md``)."""

from channels.relay.channel import RelayChannel, RelayChannelConfig, RelayNodeConfig

__all__ = ["RelayChannel", "RelayChannelConfig", "RelayNodeConfig"]
