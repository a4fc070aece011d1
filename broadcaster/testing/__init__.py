"""Test support shipped with the package, for the project and for integrators' channels."""
