"""Device drivers: stand-alone wire protocols and a simulator for each device.

Imports nothing of the project.
"""
