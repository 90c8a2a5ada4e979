"""Benchmarks of postdicom-flows against the alternatives and the limit: ``python -m benchmarks --help``."""
