"""The ``ebplatform`` channel: EBM packages to and from 应急广播平台 peers (``README.md``)."""

from channels.ebplatform.channel import EbPlatformChannel

__all__ = ["EbPlatformChannel"]
