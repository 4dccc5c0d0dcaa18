"""Generic REST connector: ``connector`` is what the registry finds (see ``connector.py``)."""

from .connector import connector

__all__ = ["connector"]
