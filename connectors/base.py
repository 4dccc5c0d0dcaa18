"""``Connector``: one application, declared, and the operations the portal runs against it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from . import filters as filtering
from . import paths
from .errors import (
    ConnectorError,
    FilterError,
    InvalidCredentials,
    InvalidResponse,
    UnknownAction,
)
from .http import HttpClient, HttpResponse, Messages
from .ratelimit import default_limiter
from .results import Account, ActionResult, Subscription, Verification
from .runtime import DEFAULT_RUNTIME, Runtime
from .secrets import Credentials, Scrubber, Secret
from .spec import Action, CredentialType, ResourceFunction
from .webhooks import Headers, WebhookSupport


class Connector:
    """An application the portal can talk to, described by data.

    Adding an application means one new package ``connectors/<name>/`` whose ``__init__``
    exposes a module-level ``connector`` (the registry finds it; nothing else is edited).
    ``connectors/figma/`` is the smallest complete example (README: "Adding a connector"):

    ``name``, ``display_name``, ``description``
        identity; ``name`` is the registry key and the CLI's first argument.
    ``base_url``
        the API's address. ``<NAME>_API_BASE_URL`` in the environment overrides it for every
        connector (``CALENDLY_API_BASE_URL``, ``GITHUB_API_BASE_URL``: a sandbox, an
        on-premises server), and the Runtime's ``base_urls[name]`` overrides that.
        ``base_url_field`` instead takes it from a credential field (the generic REST
        connector).
    ``credential_types``
        ``CredentialType``s with their ``Field``s (the portal renders its forms from them)
        and an ``auth`` that turns a credential into headers (``connectors.auth``).
    ``actions``
        ``Action``s: method, path template, ``Param``s (location path/query/body, JSON
        Schema), output schema, pagination. Input is validated before any request.
    ``resource_functions``
        ``ResourceFunction``s usable as ``~{Name}~`` in filter values, cached per credential.
    ``webhooks``
        a ``WebhookSupport`` (``connectors.webhooks.ActionWebhooks`` declares one), or None.
    ``validation_action`` and ``account``
        ``validate()`` runs that action and ``account(data)`` turns its answer into an
        ``Account`` (override ``validate`` for anything else).
    ``account_warnings``
        optional ``account_warnings(result)`` -> sentences about what the account cannot do
        (e.g. a plan without webhooks), read from the validation action's ``ActionResult``.
    ``rate_limit_per_minute``
        the API's budget per credential: the default in-process limiter enforces it, the
        portal's shared limiter reads it.
    ``unauthorized_message``
        the exact text users see when the API answers 401.
    ``guard_destinations``
        check every destination against the Runtime's network policy (user-supplied URLs).
    ``idempotency_header``
        header carrying the caller's idempotency key, for APIs that honour one.
    ``json_only``
        answers must be JSON (False: text answers are returned as strings).
    """

    def __init__(
        self,
        *,
        name: str,
        display_name: str,
        description: str = "",
        base_url: str = "",
        base_url_field: str | None = None,
        credential_types: Sequence[CredentialType],
        actions: Sequence[Action],
        resource_functions: Sequence[ResourceFunction] = (),
        webhooks: WebhookSupport | None = None,
        validation_action: str | None = None,
        account: Any = None,
        account_warnings: Any = None,
        rate_limit_per_minute: int | None = None,
        unauthorized_message: str | None = None,
        guard_destinations: bool = False,
        idempotency_header: str | None = None,
        json_only: bool = True,
        documentation_url: str | None = None,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.description = description
        self.base_url = base_url.rstrip("/")
        self.base_url_field = base_url_field
        self.credential_types: tuple[CredentialType, ...] = tuple(credential_types)
        self.actions: Mapping[str, Action] = MappingProxyType({a.name: a for a in actions})
        self.resource_functions: Mapping[str, ResourceFunction] = MappingProxyType(
            {f.name: f for f in resource_functions}
        )
        self.webhooks = webhooks
        self.validation_action = validation_action
        self._account = account
        self._account_warnings = account_warnings
        self.rate_limit_per_minute = rate_limit_per_minute
        self.unauthorized_message = unauthorized_message or (
            f"{display_name} rejected the credential (401). Check it and validate again."
        )
        self.guard_destinations = guard_destinations
        self.idempotency_header = idempotency_header
        self.json_only = json_only
        self.documentation_url = documentation_url
        self._check_declaration(actions, resource_functions)

    def _check_declaration(
        self, actions: Sequence[Action], functions: Sequence[ResourceFunction]
    ) -> None:
        if len(self.actions) != len(actions):
            raise ValueError(f"{self.name}: duplicate action names")
        for function in functions:
            if function.action not in self.actions:
                raise ValueError(f"{self.name}: {function.name} runs unknown {function.action!r}")
        if self.validation_action is not None and self.validation_action not in self.actions:
            raise ValueError(f"{self.name}: unknown validation action {self.validation_action!r}")
        if not self.credential_types:
            raise ValueError(f"{self.name}: declare at least one credential type")

    def __repr__(self) -> str:
        return f"<Connector {self.name}>"

    # Lookups ----------------------------------------------------------------------------------
    def action(self, name: str) -> Action:
        """The action called ``name``; ``UnknownAction`` lists the ones there are."""
        try:
            return self.actions[name]
        except KeyError:
            raise UnknownAction(
                f"{self.display_name} has no action {name!r}; it has: {', '.join(self.actions)}."
            ) from None

    def credential_type(self, name: str) -> CredentialType:
        for candidate in self.credential_types:
            if candidate.name == name:
                return candidate
        names = ", ".join(t.name for t in self.credential_types)
        raise InvalidCredentials(
            f"{self.display_name} has no credential type {name!r}; it has: {names}."
        )

    @property
    def base_url_env(self) -> str:
        """The environment variable that points this connector elsewhere (one convention
        for every connector: ``<NAME>_API_BASE_URL``)."""
        return f"{self.name.upper()}_API_BASE_URL"

    @property
    def webhook_events(self) -> tuple[str, ...]:
        return self.webhooks.events if self.webhooks is not None else ()

    def rate_limit_key(self, credentials: Credentials) -> str:
        """The budget a credential's requests count against."""
        return f"{self.name}:{credentials.key}"

    def base_url_for(self, credentials: Credentials, runtime: Runtime) -> str:
        """Where requests go: the Runtime's override, the credential's field, the environment
        variable, then the declared default."""
        url = runtime.base_urls.get(self.name)
        if not url and self.base_url_field:
            url = credentials.fields.get(self.base_url_field, "")
        if not url:
            url = os.environ.get(self.base_url_env, "")
        url = (url or self.base_url).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidCredentials(
                f"The {self.display_name} base URL must be an http:// or https:// URL."
            )
        return url

    # Sessions ---------------------------------------------------------------------------------
    @contextmanager
    def session(
        self,
        credentials: Credentials,
        runtime: Runtime | None = None,
        *,
        extra_secrets: Iterable[str] = (),
    ) -> Iterator[HttpClient]:
        """An ``HttpClient`` for one use of ``credentials``, closed afterwards."""
        runtime = runtime or DEFAULT_RUNTIME
        ctype = self.credential_type(credentials.type)
        ctype.check(credentials, self.display_name)
        headers = ctype.auth.headers(credentials)
        scrubber = Scrubber.for_credentials(
            credentials, [*ctype.auth.secret_values(credentials), *extra_secrets]
        )
        limiter = runtime.rate_limiter or default_limiter(self.name, self.rate_limit_per_minute)
        client = HttpClient(
            runtime=runtime,
            headers=headers,
            messages=Messages(self.display_name, self.unauthorized_message),
            scrubber=scrubber,
            limiter=limiter,
            limiter_key=self.rate_limit_key(credentials),
            policy=runtime.network_policy if self.guard_destinations else None,
            json_only=self.json_only,
        )
        try:
            yield client
        finally:
            client.close()

    # Actions ----------------------------------------------------------------------------------
    def run_action(
        self,
        name: str,
        credentials: Credentials,
        *,
        filters: filtering.Rows = None,
        context: Mapping[str, Any] | None = None,
        document: Any = None,
        limit: int | None = None,
        idempotency_key: str | None = None,
        runtime: Runtime | None = None,
        secrets: Iterable[str] = (),
    ) -> ActionResult:
        """Run action ``name`` for ``credentials``.

        ``filters`` are key/value rows (see ``connectors.filters``), ``context`` what their
        ``{{ }}`` references read, ``document`` the JSON body of actions that take one,
        ``limit`` the most items a paginated action collects, ``idempotency_key`` a key the
        destination can use to drop repeats (sent where the connector declares a header).
        ``secrets`` are values to scrub from anything sent back (a signing key nested in a
        body). Raises a ``ConnectorError`` subclass; its ``requests`` lists what was sent.
        """
        action = self.action(name)
        runtime = runtime or DEFAULT_RUNTIME
        secret_values = [*_secret_param_values(action, filters), *secrets]
        with self.session(credentials, runtime, extra_secrets=secret_values) as client:
            try:
                outbound = self._prepare(
                    client, action, credentials, runtime,
                    filters=filters, context=context, document=document,
                    idempotency_key=idempotency_key,
                )  # fmt: skip
                if action.pagination is None:
                    response = outbound.send(client)
                    return ActionResult(
                        action.name,
                        response.status,
                        response.data,
                        requests=tuple(client.summaries),
                        headers={k.lower(): v for k, v in dict(response.headers).items()},
                    )
                return self._paginate(client, action, outbound, limit, runtime)
            except ConnectorError as error:
                error.requests = tuple(client.summaries)
                raise

    def _prepare(
        self,
        client: HttpClient,
        action: Action,
        credentials: Credentials,
        runtime: Runtime,
        *,
        filters: filtering.Rows = None,
        context: Mapping[str, Any] | None = None,
        document: Any = None,
        idempotency_key: str | None = None,
    ) -> _Outbound:
        """The request an action's input describes (placeholders resolved on ``client``)."""
        memo: dict[str, Any] = {}

        def resolve(function: str, key: str) -> Any:
            if function not in memo:
                memo[function] = self._resolve(client, function, key, credentials, runtime)
            return memo[function]

        values = filtering.build_input(
            action, filters, context=context, resolve=resolve, functions=self.resource_functions
        )
        if document is not None and not action.accepts_document:
            raise FilterError(f"{action.name} takes no document; pass its input as filters.")
        path, query, body = filtering.render(action, values)
        if action.accepts_document:
            body = document if body is None else _merged(document, body, action.name)
        headers = {}
        if idempotency_key and self.idempotency_header:
            headers[self.idempotency_header] = idempotency_key
        return _Outbound(
            method=action.method,
            url=self.base_url_for(credentials, runtime) + path,
            query=query,
            body=body,
            headers=headers,
            # An idempotency key makes even a POST safe to repeat where it is honoured.
            idempotent=bool(action.idempotent or headers),
            logged_query=action.logged_query,
        )

    def _paginate(
        self,
        client: HttpClient,
        action: Action,
        outbound: _Outbound,
        limit: int | None,
        runtime: Runtime,
    ) -> ActionResult:
        """Follow the declared pagination until the end, ``limit`` items or the page cap."""
        pagination = action.pagination
        assert pagination is not None
        if limit is not None and limit < 1:
            raise FilterError("limit must be at least 1.")
        size_param = pagination.size_param
        if limit is not None and size_param and all(k != size_param for k, _ in outbound.query):
            # Ask for no more than needed when the caller did not choose a page size.
            outbound = replace(
                outbound,
                query=[*outbound.query, (size_param, str(min(limit, pagination.max_size)))],
            )
        items: list[Any] = []
        pages = 0
        while True:
            response = outbound.send(client)
            pages += 1
            page_items = pagination.items(response.data)
            if not isinstance(page_items, list):
                raise InvalidResponse(
                    f"{self.display_name}'s answer to {action.name} has no item list.",
                    status=response.status,
                )
            items.extend(page_items)
            following = pagination.next_query(
                response.data, response.headers, outbound.query, page_items
            )
            if limit is not None and len(items) >= limit:
                truncated = following is not None or len(items) > limit
                del items[limit:]
                break
            if following is None or pages >= runtime.max_pages:
                truncated = following is not None
                break
            outbound = self._next_page(outbound, following, action)
        data = response.data
        if isinstance(data, list) and not pagination.items_path:
            data = items
        elif isinstance(data, dict):
            data = _replace_at(data, pagination.items_path, items)
        return ActionResult(
            action.name, response.status, data, items=items, pages=pages, truncated=truncated,
            requests=tuple(client.summaries),
        )  # fmt: skip

    def _next_page(
        self, outbound: _Outbound, following: list[tuple[str, str]] | str, action: Action
    ) -> _Outbound:
        """The request for the next page: a new query, or a URL the API gave (which must
        stay on the origin of the request before it: the credential goes with it)."""
        if not isinstance(following, str):
            return replace(outbound, query=following)
        target, before = urlsplit(following), urlsplit(outbound.url)
        if (target.scheme, target.netloc) != (before.scheme, before.netloc):
            raise InvalidResponse(
                f"{self.display_name}'s answer to {action.name} points its next page at "
                "another host; it was not followed."
            )
        url = urlunsplit((target.scheme, target.netloc, target.path, "", ""))
        return replace(outbound, url=url, query=parse_qsl(target.query, keep_blank_values=True))

    def check_filters(self, action: str, filters: filtering.Rows) -> list[str]:
        """Problems with filter rows that are certain before running (unknown keys and
        placeholders, missing required keys, literal values of the wrong type), for editors."""
        return filtering.check(self.action(action), filters, self.resource_functions)

    # Resource functions -----------------------------------------------------------------------
    def resolve(
        self, function: str, credentials: Credentials, runtime: Runtime | None = None
    ) -> Any:
        """The value of resource function ``function`` (e.g. ``GetOrganizationUrl``) for
        ``credentials``, from the cache when fresh."""
        runtime = runtime or DEFAULT_RUNTIME
        with self.session(credentials, runtime) as client:
            return self._resolve(client, function, function, credentials, runtime)

    def _resolve(
        self,
        client: HttpClient,
        function: str,
        key: str,
        credentials: Credentials,
        runtime: Runtime,
    ) -> Any:
        spec = self.resource_functions.get(function)
        if spec is None:
            raise filtering.unknown_function(function, key, self.resource_functions)
        cache_key = (
            f"connectors:{self.name}:{credentials.key}:"
            f"{credentials.fingerprint(runtime.fingerprint_key)}:{function}"
        )
        cached = runtime.cache.get(cache_key)
        if cached is not None:
            return cached
        action = self.action(spec.action)
        outbound = self._prepare(client, action, credentials, runtime, filters=spec.filters)
        response = outbound.send(client)
        try:
            value = paths.lookup(response.data, spec.path)
        except paths.PathNotFound:
            value = None
        if value is None:
            raise InvalidResponse(
                f"{self.display_name}'s answer to {spec.action} has no {spec.path}, which "
                f"~{{{function}}}~ needs."
            )
        runtime.cache.set(cache_key, value, runtime.cache_ttl)
        return value

    # Validation -------------------------------------------------------------------------------
    def validate(self, credentials: Credentials, runtime: Runtime | None = None) -> Account:
        """Check the credential against the API; the ``Account`` it reaches, or a typed error
        (``AuthenticationFailed`` for a refused token, ``TransportError`` for an outage)."""
        if self.validation_action is None or self._account is None:
            raise NotImplementedError(f"{self.name} declares no validation")
        result = self.run_action(self.validation_action, credentials, runtime=runtime)
        account = self._account(result.data)
        if self._account_warnings is not None:
            warnings = tuple(self._account_warnings(result))
            if warnings:
                account = replace(account, warnings=warnings)
        return account

    # Webhooks ---------------------------------------------------------------------------------
    def _webhooks(self) -> WebhookSupport:
        return self.webhooks if self.webhooks is not None else WebhookSupport()

    def subscription_options(self, options: Mapping[str, Any]) -> dict[str, str]:
        """``options`` checked against the declared subscription options, defaults filled
        in (``FilterError`` names what is wrong)."""
        return self._webhooks().subscription_options(options, self.display_name)

    def create_subscription(
        self,
        credentials: Credentials,
        *,
        url: str,
        events: Sequence[str],
        signing_key: str | Secret | None = None,
        runtime: Runtime | None = None,
        **options: Any,
    ) -> Subscription:
        """Subscribe ``url`` to ``events`` with the declared subscription ``options``
        (Calendly: ``scope``; GitHub: ``owner``, ``repo``); ``AlreadyExists`` if the URL is
        subscribed."""
        options = self.subscription_options(options)
        return self._webhooks().create_subscription(
            self, credentials, url=url, events=events, signing_key=signing_key,
            runtime=runtime or DEFAULT_RUNTIME, **options,
        )  # fmt: skip

    def list_subscriptions(
        self, credentials: Credentials, *, runtime: Runtime | None = None, **options: Any
    ) -> list[Subscription]:
        """Every subscription visible to the credential with these ``options`` (all pages)."""
        options = self.subscription_options(options)
        return self._webhooks().list_subscriptions(
            self, credentials, runtime=runtime or DEFAULT_RUNTIME, **options
        )

    def get_subscription(
        self, credentials: Credentials, subscription: str, *, runtime: Runtime | None = None
    ) -> Subscription:
        """One subscription by URI or id."""
        return self._webhooks().get_subscription(
            self, credentials, subscription, runtime=runtime or DEFAULT_RUNTIME
        )

    def delete_subscription(
        self, credentials: Credentials, subscription: str, *, runtime: Runtime | None = None
    ) -> None:
        """Delete a subscription by URI or id (``NotFound`` if it is gone already)."""
        self._webhooks().delete_subscription(
            self, credentials, subscription, runtime=runtime or DEFAULT_RUNTIME
        )

    def verify_delivery(
        self,
        headers: Headers,
        raw_body: bytes | str,
        signing_key: str | Secret | None,
        *,
        now: float | None = None,
        tolerance: float = 180,
    ) -> Verification:
        """Whether a delivery is authentic and fresh; never raises."""
        try:
            return self._webhooks().verify_delivery(
                headers, raw_body, signing_key, now=now, tolerance=tolerance
            )
        except Exception as error:  # a verifier must answer, whatever it was fed
            return Verification(
                False, f"the delivery could not be checked ({type(error).__name__})"
            )

    def dedupe_key(self, delivery: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        """A stable key for one event, the same for every redelivery of it (from a delivery
        id in the ``headers``, where the application sends one, else from the body)."""
        return self._webhooks().dedupe_key(delivery, headers)

    def event_name(self, payload: bytes | str | Mapping[str, Any], headers: Headers = ()) -> str:
        """The event's name (``invitee.created``, ``issues.opened``), or "" when there is
        none; read from the body and, where the application puts it there, the headers."""
        try:
            return self._webhooks().event_name(payload, headers)
        except Exception:
            return ""

    # Description ------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything the portal's API shows about this connector, as JSON data."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "documentation_url": self.documentation_url,
            "base_url": self.base_url or None,
            "base_url_env": self.base_url_env,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "credential_types": [t.as_dict() for t in self.credential_types],
            "actions": [a.as_dict() for a in self.actions.values()],
            "resource_functions": [f.as_dict() for f in self.resource_functions.values()],
            "webhooks": self.webhooks.as_dict() if self.webhooks is not None else None,
        }

    as_dict = describe


@dataclass(frozen=True, slots=True)
class _Outbound:
    """A prepared request: what ``HttpClient.send`` needs, built once per action run."""

    method: str
    url: str
    query: list[tuple[str, str]]
    body: Any
    headers: dict[str, str]
    idempotent: bool
    logged_query: frozenset[str]

    def send(self, client: HttpClient) -> HttpResponse:
        return client.send(
            self.method,
            self.url,
            query=self.query,
            body=self.body,
            headers=self.headers,
            idempotent=self.idempotent,
            logged_query=self.logged_query,
        )


def _secret_param_values(action: Action, filters: filtering.Rows) -> list[str]:
    """Literal values given for secret parameters, to scrub from anything sent back."""
    secret = {p.name for p in action.params if p.secret}
    if not secret:
        return []
    try:
        rows = filtering.normalise(filters)
    except FilterError:
        return []
    return [str(v) for k, v in rows if filtering.split_key(k)[0] in secret and isinstance(v, str)]


def _merged(document: Any, body: dict[str, Any], action: str) -> Any:
    if not isinstance(document, dict):
        raise FilterError(f"{action}: body keys need the document to be a JSON object.")
    return {**document, **body}


def _replace_at(data: dict[str, Any], path: str | None, items: list[Any]) -> dict[str, Any]:
    """A shallow copy of ``data`` whose item list (a top-level key) is ``items``."""
    if not path or "." in path or path not in data:
        return data
    return {**data, path: items}
