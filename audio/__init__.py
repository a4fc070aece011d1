"""Audio rendering for warnings: speech engines, attention signals, SAME headers, assembly.

Imports nothing of the project.
"""
