"""The project's flows: ``from flows import bulk_upload_and_share, batch_reassignment, nightly_order_export``."""

from .export import nightly_order_export
from .reassignment import batch_reassignment
from .upload_and_share import bulk_upload_and_share

__all__ = [
    "batch_reassignment",
    "bulk_upload_and_share",
    "nightly_order_export",
]
