"""Test-wide settings."""

from hypothesis import settings

# The same examples every run: a CI failure must be reproducible, never a coin toss.
settings.register_profile("nnefopt", derandomize=True, deadline=None)
settings.load_profile("nnefopt")
