"""Discovery of installed connectors: every subpackage of ``connectors`` with a module-level
``connector`` object is one, so adding an application is adding a folder.

``connectors`` is a pkgutil-style namespace package: a ``connectors/`` directory elsewhere on
``sys.path`` (an on-premises add-on, a test's temporary directory) contributes its subpackages
too. Discovery runs once, lazily; ``refresh()`` rescans after ``sys.path`` changed. A package
that fails to import is skipped and logged (``problems()`` lists them) so one broken add-on
cannot take the portal down.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import threading

from .base import Connector
from .errors import UnknownConnector

logger = logging.getLogger("connectors.registry")

_PACKAGE = "connectors"
_lock = threading.RLock()
_found: dict[str, Connector] | None = None
_problems: dict[str, str] = {}


def _discover() -> dict[str, Connector]:
    package = sys.modules[_PACKAGE]
    # Pick up connectors/ directories added to sys.path since the package was imported.
    package.__path__ = pkgutil.extend_path(list(package.__path__), _PACKAGE)
    found: dict[str, Connector] = {}
    _problems.clear()
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_") or info.name in found:
            continue
        module_name = f"{_PACKAGE}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # one broken add-on must not hide the others
            _problems[info.name] = f"{type(error).__name__}: {error}"
            logger.error("connector package %s failed to import: %s", module_name, error)
            continue
        connector = getattr(module, "connector", None)
        if not isinstance(connector, Connector):
            continue
        if connector.name in found:
            _problems[info.name] = f"a second connector named {connector.name!r}"
            logger.error("connector package %s repeats the name %r", module_name, connector.name)
            continue
        found[connector.name] = connector
    return found


def _registry() -> dict[str, Connector]:
    global _found
    with _lock:
        if _found is None:
            _found = _discover()
        return _found


def refresh() -> None:
    """Forget what was discovered; the next lookup scans again."""
    global _found
    with _lock:
        _found = None


def all_connectors() -> list[Connector]:
    """Every installed connector, by name."""
    return sorted(_registry().values(), key=lambda c: c.name)


def get_connector(name: str) -> Connector:
    """The connector called ``name``; ``UnknownConnector`` lists the installed ones."""
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        installed = ", ".join(sorted(registry)) or "none"
        raise UnknownConnector(
            f"No connector is called {name!r}; installed: {installed}."
        ) from None


def problems() -> dict[str, str]:
    """Connector packages that could not be loaded, and why."""
    _registry()
    return dict(_problems)
