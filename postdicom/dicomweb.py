"""STOW-RS, QIDO-RS and WADO-RS in both path dialects (placeholder: being written)."""


class DicomWebMixin:
    """DICOMweb transactions of :class:`postdicom.client.PostDicomClient`."""
