"""CMPP 2.0/3.0 driver for China Mobile ISMG gateways, and an ISMG simulator.

Layers: ``pdu`` (codec, pure functions, both versions) and ``status`` → ``client``
(``CmppBind`` on ``drivers.smsgw.bind``, ``CmppClient`` with several connections).
``simulator`` serves the same protocol over TCP. Errors: see ``drivers.smsgw.errors``.
"""

from drivers.cmpp.client import CmppBind, CmppClient, CmppClientConfig

__all__ = ["CmppBind", "CmppClient", "CmppClientConfig"]
