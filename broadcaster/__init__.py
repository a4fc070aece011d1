"""broadcaster: a multi-channel public early-warning system.

The core turns CAP 1.2 warnings into deliveries for pluggable channels (SMS, village
loudspeakers, FM/RDS, web push and integrators' own), stores them durably, dispatches them with
retries until the alert expires, and reports per-target delivery state.
"""

__version__ = "0.1.0"
