"""A Calendly API v2 sandbox: a real HTTP server on loopback for tests, demos and benchmarks.

Plain Python (standard library HTTP server, no web framework) so that it can run inside any
test process or on its own (``python -m connectors.calendly.sandbox``)::

    from connectors.calendly.sandbox import CalendlySandbox, seed

    with CalendlySandbox() as sb:
        requests.get(f"{sb.url}/users/me", headers={"Authorization": f"Bearer {seed.OWNER_TOKEN}"})
"""

from connectors.sandbox.journal import Delivery, Exchange

from . import seed
from .app import CalendlySandbox
from .webhooks import sign

SANDBOX = CalendlySandbox  # what ``python -m connectors.sandbox calendly`` serves

__all__ = ["SANDBOX", "CalendlySandbox", "Delivery", "Exchange", "seed", "sign"]
