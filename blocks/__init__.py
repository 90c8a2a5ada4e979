"""Prefect blocks of this project: ``PostDicomCredentials``.

Register them with ``prefect block register -m blocks``.
"""

from .credentials import PostDicomCredentials

__all__ = ["PostDicomCredentials"]
