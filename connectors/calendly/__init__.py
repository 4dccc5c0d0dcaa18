"""Calendly (API v2) connector: ``connector`` is what the registry finds.

Written by hand before the kit existed: ``connector.py`` declares the connector (credential
type, resource functions, validation, budget), ``actions.py`` the actions, ``schemas.py`` the
output schemas, ``webhooks.py`` subscriptions and signature checks. ``sandbox/`` is a local
Calendly look-alike for tests and demos (not part of the connector). A new application starts
from the kit instead (``connectors.kit``; ``connectors/figma/`` is the smallest example).
"""

from .connector import connector

__all__ = ["connector"]
