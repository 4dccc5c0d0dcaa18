"""One step of a processflow: its input resolved, the connector called, the answer returned.

A map step renders its mapping from the run's context. An action step opens its credential
once, renders its document, calls the connector action with an idempotency key, and, when
the step subscribes another flow's Processflow URL (the seed's manual way), hands the
application that flow's signing key and tells the host about the new subscription.
"""

from __future__ import annotations

from collections.abc import MutableSet
from typing import Any

import connectors

from . import calls, definition, templating
from .host import CallbackTarget, CallbackUnavailable, CredentialUnavailable, Host

# Secret values shorter than this are not searched for in stored documents: a three-letter
# password would blank out every text that happens to contain those letters.
MIN_SECRET_LENGTH = 8


class StepFailed(Exception):
    """A step could not complete; ``retryable`` says whether trying again may help, and
    ``retry_after`` how long the application asked us to wait (seconds), if it did."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        request: dict | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.request = request or {}


def is_action(step: dict) -> bool:
    return step.get("type", "action") != "map"


def _render(value: Any, context: dict) -> Any:
    try:
        return templating.render(value, context)
    except templating.TemplateError as error:
        raise StepFailed(str(error), retryable=False) from None


def run_step(
    step: dict,
    context: dict,
    *,
    host: Host,
    idempotency_key: str,
    purpose: str,
    secrets: MutableSet[str],
) -> tuple[Any, dict]:
    """Execute one step; returns ``(output, summary)``, raises :class:`StepFailed`.

    ``secrets`` collects the secret values the step handled (its credential's, a signing
    key it handed over), for redacting what is recorded.
    """
    if not is_action(step):
        return _render(step.get("mapping", {}), context), {}
    try:
        with host.open_credential(
            step.get("credential"), application=step.get("application"), purpose=purpose
        ) as opened:
            secrets.update(v for v in opened.secret_values if len(v) >= MIN_SECRET_LENGTH)
            return _run_action(step, context, opened, host, idempotency_key, secrets)
    except CredentialUnavailable as error:
        raise StepFailed(str(error), retryable=False) from None


def _run_action(step, context, opened, host: Host, idempotency_key: str, secrets) -> tuple:
    app = definition.application(opened.application)
    action = step["action"]
    document = None
    if step.get("document") not in (None, ""):
        document = _render(step["document"], context)
    filters = [list(row) for row in step.get("filters", [])]
    target = _callback_target(app, action, filters, host)
    if target is not None:
        filters = _with_signing_key(app, target, filters, secrets)
    runtime = host.runtime(app)

    def send() -> calls.ActionOutcome:
        return calls.run_action(
            app, action, opened.credentials, runtime=runtime, filters=filters,
            context=context, document=document, idempotency_key=idempotency_key,
        )  # fmt: skip

    result = send()
    if target is not None and result.status == 409:
        # Subscribing again (a re-run of the subscribing flow): the existing subscription
        # may hold another key, so it is replaced, as automatic registration does.
        removed = calls.remove_subscriptions_to(
            app, opened.credentials, runtime=runtime, url=target.url,
            options=_options(app, filters),
        )  # fmt: skip
        if removed.ok:
            result = send()
    opened.report(
        action=action,
        ok=result.ok,
        status=result.status,
        **({"message": result.message} if not result.ok else {}),
    )
    if not result.ok:
        raise StepFailed(
            result.message,
            retryable=result.retryable,
            status=result.status,
            retry_after=result.retry_after,
            request=result.request,
        )
    if target is not None:
        made = app.webhooks.read_subscription(result.data)
        target.subscribed(made.as_dict() if made is not None else {})
    return result.data, {"request": result.request, "status": result.status}


def _options(app, filters: list) -> dict[str, str]:
    """The subscription options this step's rows give (the declared defaults otherwise)."""
    try:
        return app.subscription_options(definition.options_from_rows(app, filters))
    except connectors.errors.FilterError as error:
        raise StepFailed(str(error), retryable=False) from None


def _callback_target(app, action: str, filters: list, host: Host) -> CallbackTarget | None:
    """The flow whose Processflow URL this step subscribes, if it is such a step."""
    webhooks = app.webhooks
    if webhooks is None or action != webhooks.subscribe_action:
        return None
    url = next((value for key, value in filters if key == webhooks.callback_key), "")
    try:
        return host.callback_target(app, url)
    except CallbackUnavailable as error:
        raise StepFailed(str(error), retryable=False) from None


def _with_signing_key(app, target: CallbackTarget, rows: list, secrets) -> list:
    """``rows`` plus the row that gives the application ``target``'s signing key.

    A row typing a key itself (only versions saved before such rows were refused can hold
    one) fails the step: the subscription would be signed with a key ``target`` does not
    know, so none of its deliveries could be verified."""
    refusal = definition.typed_key_refusal(app, app.webhooks.subscribe_action, rows)
    if refusal is not None:
        message = f"{refusal[1]} Edit this processflow, remove it and deploy again."
        raise StepFailed(message, retryable=False)
    key = target.signing_key()
    secrets.add(key)
    return [*rows, [app.webhooks.signing_key_key, key]]
