"""A local PostDICOM: the vendor's DICOMweb wire protocol with real, lasting storage.

Like moto for AWS, the sandbox lets the project (and its users) develop and
test against PostDICOM without an account or a network. It is a separate
program: it talks to the rest of the project over HTTP only and imports none
of ``postdicom``, ``blocks``, ``tasks`` or ``flows``.

Start it with ``python -m sandbox`` or ``postdicom-flows sandbox``;
``sandbox.app.create_app`` builds the ASGI application.
"""
