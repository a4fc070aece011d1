"""The OASIS CAP 1.2 schema (``CAP-v1.2.xsd``, verbatim), shipped as package data."""
