"""The 13 custom endpoints as data (placeholder: being written)."""


class CustomEndpointsMixin:
    """Custom endpoint methods of :class:`postdicom.client.PostDicomClient`."""
