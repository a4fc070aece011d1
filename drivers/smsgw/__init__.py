"""Shared parts of the operator SMS-gateway drivers (``drivers.smpp``, ``drivers.cmpp``).

``errors`` (one exception tree), ``flow`` (token bucket, backoff), ``segments`` (UCS-2 / GBK
splitting with a concatenation UDH), ``results`` (submissions, receipts), ``bind`` (one
connection: framing, window, rate, keep-alive), ``client`` (several binds, reconnect, receipt
matching) and ``simulator`` (the SMSC core both protocol simulators build on).
"""
