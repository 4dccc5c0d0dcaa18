"""What the engine asks of its host: the small interface every place that runs flows implements.

The engine knows how a step runs; only a host knows where credentials are kept, how
outbound calls are budgeted and cached, what time it is, whether it still holds the run,
and where step records go. The portal's Celery workers are one host (vault, Redis, the
database); an on-premise agent is another (its own encrypted store, SQLite, the portal
over HTTPS). Neither needs to know how the other works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import connectors

from .records import StepRecord


class CredentialUnavailable(Exception):
    """The step's credential cannot be used (deleted, or its secret cannot be decrypted);
    the message says what a person should do. Trying again does not help."""


class CallbackUnavailable(Exception):
    """A step subscribes a Processflow URL whose flow cannot receive deliveries yet (it is
    not deployed, or is not this organization's); the message says what to do."""


class OpenedCredential:
    """A credential opened (decrypted once) for one step.

    ``credentials`` goes to the connector; ``secret_values`` are the plaintexts, kept only so
    the engine can cut them out of anything it records. The engine :meth:`report`-s the
    outcome of the call it made with them, which the host writes to its audit trail when
    the credential is closed again.
    """

    def __init__(
        self,
        *,
        application: str,
        credentials: connectors.Credentials,
        secret_values: Iterable[str] = (),
    ):
        self.application = application
        self.credentials = credentials
        self.secret_values = frozenset(secret_values)
        self.outcome: dict[str, Any] = {}

    def report(self, **outcome: Any) -> None:
        """Note what the call did (``ok``, ``status``, ``action``, ``message``: never data)."""
        self.outcome.update(outcome)

    def __repr__(self) -> str:
        return f"<OpenedCredential {self.application} {self.credentials.key}>"


class CallbackTarget(Protocol):
    """A flow whose Processflow URL a step subscribes at an application (the seed's manual
    way). Its deliveries are verified with its own signing key, which the step hands over."""

    url: str

    def signing_key(self) -> str:
        """The key the application must sign deliveries with (created if the flow has
        none yet)."""
        ...

    def subscribed(self, subscription: Mapping[str, Any]) -> None:
        """Remember the subscription the step created (so undeploying removes it)."""
        ...


class Host(Protocol):
    """Everything the engine needs from where it runs."""

    def open_credential(
        self, ref: object, *, application: str | None, purpose: str
    ) -> AbstractContextManager[OpenedCredential]:
        """Open the credential ``ref`` for one call, recording who used it and why.

        Raises :class:`CredentialUnavailable` when it cannot be used."""
        ...

    def runtime(self, app: connectors.Connector) -> connectors.Runtime:
        """How ``app`` is called here: base URL, timeouts, rate budget, resource cache,
        network policy."""
        ...

    def callback_target(self, app: connectors.Connector, url: str) -> CallbackTarget | None:
        """The flow whose Processflow URL ``url`` is, or None when it is no Processflow URL."""
        ...

    def now(self) -> datetime:
        """The time, for step records."""
        ...

    def hold(self) -> bool:
        """Called before each action: False when this host no longer holds the run (its
        lease was taken over), and the run must stop without writing."""
        ...

    def record_step(self, record: StepRecord) -> None:
        """Store a step record (called when an action starts and when any step ends)."""
        ...
