"""The flow engine: how a processflow's definition is checked and its steps run, anywhere.

Plain Python on top of ``connectors`` (no Django, no Celery, no database), so the portal's
Cloud workers and an on-premise agent run the very same steps. What only a host has (where
credentials are kept, the rate budget and cache, the clock, the lease on a run, where step
records go) it asks through :class:`flows.host.Host`.

- ``flows.definition``: the definition document and its checks.
- ``flows.templating``: ``{{ trigger.… }}`` / ``{{ steps.… }}`` references.
- ``flows.steps``: one step (map or action); ``flows.runner``: a run's steps in order.
- ``flows.calls``: connector calls as outcomes; ``flows.redaction``: what is never stored.
- ``flows.retry``: backoff and when to give up; ``flows.schedule``: cron checks.
"""

from .definition import CredentialCatalog, CredentialInfo, DefinitionError, check
from .host import (
    CallbackTarget,
    CallbackUnavailable,
    CredentialUnavailable,
    Host,
    OpenedCredential,
)
from .records import StepRecord
from .retry import RetryPolicy
from .runner import RunResult, execute_steps
from .steps import StepFailed, run_step

__all__ = [
    "CallbackTarget",
    "CallbackUnavailable",
    "CredentialCatalog",
    "CredentialInfo",
    "CredentialUnavailable",
    "DefinitionError",
    "Host",
    "OpenedCredential",
    "RetryPolicy",
    "RunResult",
    "StepFailed",
    "StepRecord",
    "check",
    "execute_steps",
    "run_step",
]
