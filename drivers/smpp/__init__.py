"""SMPP 3.4 driver for operator SMS gateways, and an SMSC simulator.

Layers: ``pdu`` (codec, pure functions) and ``receipt`` / ``status`` → ``client`` (``SmppBind``
on ``drivers.smsgw.bind``, ``SmppClient`` with several binds) → the ``gateway-sms`` channel.
``simulator`` serves the same protocol over TCP. Errors: see ``drivers.smsgw.errors``.
"""

from drivers.smpp.client import SmppBind, SmppClient, SmppClientConfig

__all__ = ["SmppBind", "SmppClient", "SmppClientConfig"]
