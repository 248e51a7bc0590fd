"""The orchestrators: leader-only components that create and retire tasks.

Manager layer. See README.md in this package for the map of modules.
"""
