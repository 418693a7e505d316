"""The test suite: contract tiers, live server, faults, CLI, examples."""
