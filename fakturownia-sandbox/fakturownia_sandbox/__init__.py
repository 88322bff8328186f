"""A local stand-in of the Fakturownia invoicing API, with fault injection.

Speaks what the platform uses: ``POST /invoices.json``, ``GET /invoices.json?oid=``
and ``GET /invoices/<id>.json``. Run it alone with
``python -m fakturownia_sandbox --port 8085``.
"""

from fakturownia_sandbox.app import create_app

__all__ = ["create_app"]
