"""The 13 custom endpoints of PostDICOM as client methods, written out.

The methods live in two modules by what they act on:
:mod:`postdicom.endpoints_folders` (folders and shares) and
:mod:`postdicom.endpoints_orders` (patient orders); :class:`CustomEndpointsMixin`
joins them for the client. Each method names its row of the table
(:mod:`postdicom.endpoint_table`: path, header, parameters, answer model,
retry safety, splits) and hands its arguments to the request engine
(:meth:`~postdicom.endpoint_engine.EndpointEngine.call_endpoint`), which
encodes them into the parameter header, sends ``GET {WebAddress}{path}`` and
parses the answer. A test checks that every method's parameters are its row's
(names, which are required), so the two cannot drift apart.

Every method raises, before anything is sent,
:class:`~postdicom.errors.ValidationError` (a ``ValueError``) naming the
parameter that is missing or malformed, or
:class:`~postdicom.errors.HeaderTooLargeError` when the parameter header is
over the safe size (``POSTDICOM_MAX_HEADER_BYTES``, 8 KiB) and the call cannot
be split; and :class:`~postdicom.errors.PostDicomError` subclasses when the
server refuses the call or cannot be reached (the server's ``X-Error-Reason``
included). Every answer keeps the JSON as received in ``.raw``.
Per-endpoint details (wire keys, accepted values): ``docs/endpoints.md``.
"""

from __future__ import annotations

from .endpoints_folders import FolderAndShareEndpoints
from .endpoints_orders import OrderEndpoints


class CustomEndpointsMixin(FolderAndShareEndpoints, OrderEndpoints):
    """The 13 custom-endpoint methods of :class:`postdicom.client.PostDicomClient`."""
