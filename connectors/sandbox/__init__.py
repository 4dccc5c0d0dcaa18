"""The sandbox kit: application look-alikes for tests, demos and benchmarks, from declarations.

``Sandbox`` (``app.py``) is the shared machinery (server, tokens, rate budget, faults,
journal, pagination, signed and retried webhook deliveries, admin API); a connector's
``sandbox`` package subclasses it with its seed, routes and events, and completes its answers
from the application's own OpenAPI document (``fill.py``). ``python -m connectors.sandbox
APP`` serves one (``make sandbox APP=github``).
"""

from .app import Sandbox, SandboxError, invalid, route
from .fill import fill
from .journal import Delivery, Exchange
from .server import ApiRequest, ApiResponse

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "Delivery",
    "Exchange",
    "Sandbox",
    "SandboxError",
    "fill",
    "invalid",
    "route",
]
