"""Deployments, the ``postdicom-flows`` command line, the demo and the serve entry point."""
