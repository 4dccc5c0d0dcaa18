"""The Calendly API v2 endpoints: authentication, rate limiting, routing and each operation.

This module knows nothing about sockets: ``CalendlyApi.handle`` takes a parsed ``ApiRequest``
and returns an ``ApiResponse``, so the behaviour can be read (and reasoned about) apart from the
HTTP plumbing in ``connectors.sandbox.server``. Permission rules and messages follow the
OpenAPI document's per-operation 403 examples; where it is silent, the rule that is least
surprising for a client was chosen and is stated on the handler.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from connectors.sandbox.server import ApiRequest, ApiResponse, bearer_token

from . import errors
from .errors import ApiError, forbidden, invalid, not_found
from .params import QueryParams, parse_uri
from .records import Invitee, ScheduledEvent, Subscription, User
from .resources import Renderer
from .state import Store, new_uuid, utcnow

# FACTS.md adds the no-show events to the three the 2023 OpenAPI document lists.
WEBHOOK_EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
    "routing_form_submission.created",
)
ORGANIZATION_ONLY_EVENTS = ("routing_form_submission.created",)
UPGRADE_MESSAGE = "Please upgrade your Calendly account to Professional"
NOT_IN_ORGANIZATION = "This user is not in your organization"
NO_PERMISSION = "You do not have permission"
NOT_ALLOWED_TO_VIEW_EVENT = "You are not allowed to view this event"


Handler = Callable[..., ApiResponse]


def _ok(body: dict[str, Any], status: int = 200) -> ApiResponse:
    return ApiResponse(status, body)


class CalendlyApi:
    """Dispatches API requests against one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        for method, pattern, handler in (
            ("GET", "/users/me", self.get_me),
            ("GET", "/users/{uuid}", self.get_user),
            ("GET", "/organization_memberships", self.list_memberships),
            ("GET", "/organization_memberships/{uuid}", self.get_membership),
            ("GET", "/event_types", self.list_event_types),
            ("GET", "/event_types/{uuid}", self.get_event_type),
            ("GET", "/scheduled_events", self.list_events),
            ("GET", "/scheduled_events/{uuid}", self.get_event),
            ("GET", "/scheduled_events/{uuid}/invitees", self.list_invitees),
            ("GET", "/scheduled_events/{event_uuid}/invitees/{invitee_uuid}", self.get_invitee),
            ("POST", "/webhook_subscriptions", self.create_subscription),
            ("GET", "/webhook_subscriptions", self.list_subscriptions),
            ("GET", "/webhook_subscriptions/{uuid}", self.get_subscription),
            ("DELETE", "/webhook_subscriptions/{uuid}", self.delete_subscription),
        ):
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            self.routes.append((method, re.compile(f"^{regex}$"), handler))

    # Entry point ------------------------------------------------------------------------------
    def handle(self, request: ApiRequest) -> ApiResponse:
        """Authenticate, count against the budget, route, and turn ApiErrors into answers."""
        token = bearer_token(request.headers.get("authorization"))
        with self.store.lock:
            user = self.store.user_for_token(token) if token else None
            # Unauthenticated callers share one anonymous budget, as they share one IP here.
            budget = self.store.consume_budget(token or "", user, time.time())
            try:
                if not budget.allowed:
                    raise ApiError(429, *errors.TOO_MANY_REQUESTS)
                if user is None:
                    raise errors.unauthenticated()
                response = self._route(request, user)
            except ApiError as error:
                response = ApiResponse(error.status, error.body(), dict(error.headers))
            response.headers.update(budget.headers())
            response.user_uuid = user.uuid if user else None
            return response

    def _route(self, request: ApiRequest, user: User) -> ApiResponse:
        for method, regex, handler in self.routes:
            match = regex.match(request.path)
            if match and method == request.method:
                return handler(request, user, **match.groupdict())
        # Calendly answers unknown paths and unsupported methods alike with 404.
        raise not_found()

    # Helpers ----------------------------------------------------------------------------------
    @property
    def render(self) -> Renderer:
        return self.store.renderer

    def _cursor(self, request: ApiRequest, params: QueryParams) -> tuple[int, int]:
        """(count, offset) of a list request; problems join the other parameters' details."""
        return params.count(), self.store.paginator.offset(params, request.path)

    def _page(
        self, request: ApiRequest, cursor: tuple[int, int], items: list[Any], render
    ) -> dict[str, Any]:
        count, offset = cursor
        page, pagination = self.store.paginator.page(
            items,
            offset=offset,
            count=count,
            base_url=self.render.base_url,
            path=request.path,
            query=request.query,
        )
        return {"collection": [render(item) for item in page], "pagination": pagination}

    def _user(self, uuid: str) -> User:
        found = self.store.users.get(uuid)
        if found is None:
            raise not_found()
        return found

    def _can_view_event(self, user: User, event: ScheduledEvent) -> bool:
        # The host sees their own events; owners and admins see their organization's.
        return event.owner_uuid == user.uuid or (
            user.is_admin and event.organization_uuid == user.organization_uuid
        )

    def _event(self, user: User, uuid: str, denied: str = NOT_ALLOWED_TO_VIEW_EVENT):
        event = self.store.events.get(uuid)
        if event is None:
            raise not_found()
        if not self._can_view_event(user, event):
            raise forbidden(denied)
        return event

    # Users and memberships --------------------------------------------------------------------
    def get_me(self, request: ApiRequest, user: User) -> ApiResponse:
        return _ok({"resource": self.render.user(user)})

    def get_user(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        """Users of the caller's own organization only (another organization's: 403)."""
        target = user if uuid == "me" else self._user(uuid)
        if target.organization_uuid != user.organization_uuid:
            raise forbidden()
        return _ok({"resource": self.render.user(target)})

    def list_memberships(self, request: ApiRequest, user: User) -> ApiResponse:
        params = QueryParams(request.query)
        org_uuid = params.uri("organization", "organizations")
        user_uuid = params.uri("user", "users")
        email = params.email("email")
        if not params.present("organization") and not params.present("user"):
            params.problem("organization", "organization or user is required")
        cursor = self._cursor(request, params)
        params.raise_if_invalid()
        if org_uuid is not None and org_uuid != user.organization_uuid:
            raise forbidden(NOT_IN_ORGANIZATION)
        members = [
            u for u in self.store.users.values() if u.organization_uuid == user.organization_uuid
        ]
        if user_uuid is not None:
            target = self._user(user_uuid)
            if target.organization_uuid != user.organization_uuid:
                raise forbidden(NOT_IN_ORGANIZATION)
            members = [target]
        if email is not None:
            members = [u for u in members if u.email.lower() == email.lower()]
        members.sort(key=lambda u: (u.created_at, u.uuid))
        return _ok(self._page(request, cursor, members, self.render.membership))

    def get_membership(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        target = next((u for u in self.store.users.values() if u.membership_uuid == uuid), None)
        if target is None:
            raise not_found()
        if target.organization_uuid != user.organization_uuid:
            raise forbidden(NOT_IN_ORGANIZATION)
        return _ok({"resource": self.render.membership(target)})

    # Event types ------------------------------------------------------------------------------
    def list_event_types(self, request: ApiRequest, user: User) -> ApiResponse:
        """``organization`` lists the whole organization (owners/admins only); ``user`` lists
        one member's types (any member of the same organization may look)."""
        params = QueryParams(request.query)
        org_uuid = params.uri("organization", "organizations")
        user_uuid = params.uri("user", "users")
        active = params.boolean("active")
        admin_managed = params.boolean("admin_managed")
        sort = params.sort("sort", ("name", "position", "created_at", "updated_at"), "name:asc")
        if not params.present("organization") and not params.present("user"):
            params.problem("organization", "organization or user is required")
        cursor = self._cursor(request, params)
        params.raise_if_invalid()

        if org_uuid is not None and org_uuid != user.organization_uuid:
            raise forbidden()
        types = list(self.store.event_types.values())
        if user_uuid is not None:
            target = self._user(user_uuid)
            if target.organization_uuid != user.organization_uuid:
                raise forbidden(NOT_IN_ORGANIZATION)
            types = [t for t in types if t.owner_uuid == target.uuid]
        else:
            if not user.is_admin:
                raise forbidden(NO_PERMISSION)
            types = [
                t
                for t in types
                if self.store.users[t.owner_uuid].organization_uuid == user.organization_uuid
            ]
        if active is not None:
            types = [t for t in types if t.active == active]
        if admin_managed:  # the seed has no admin-managed types
            types = []
        order = list(self.store.event_types)
        for key, descending in reversed(sort):
            types.sort(
                key=lambda t, key=key: (
                    order.index(t.uuid) if key == "position" else getattr(t, key)
                ),
                reverse=descending,
            )

        def render(event_type):
            return self.render.event_type(event_type, self.store.users[event_type.owner_uuid])

        return _ok(self._page(request, cursor, types, render))

    def get_event_type(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        event_type = self.store.event_types.get(uuid)
        if event_type is None:
            raise not_found()
        owner = self.store.users[event_type.owner_uuid]
        if owner.organization_uuid != user.organization_uuid:
            raise forbidden()
        return _ok({"resource": self.render.event_type(event_type, owner)})

    # Scheduled events -------------------------------------------------------------------------
    def list_events(self, request: ApiRequest, user: User) -> ApiResponse:
        """Permissions as the OpenAPI description states them: ``organization`` needs an owner
        or admin; ``user`` alone only for one's own events; both for a colleague's events."""
        params = QueryParams(request.query)
        org_uuid = params.uri("organization", "organizations")
        user_uuid = params.uri("user", "users")
        email = params.email("invitee_email")
        status = params.choice("status", ("active", "canceled"))
        sort = params.sort("sort", ("start_time",), "start_time:asc")
        min_start = params.time("min_start_time")
        max_start = params.time("max_start_time")
        if not params.present("organization") and not params.present("user"):
            params.problem("user", "user or organization is required")
        cursor = self._cursor(request, params)
        params.raise_if_invalid()

        target = self._user(user_uuid) if user_uuid is not None else None
        if org_uuid is not None:
            if org_uuid != user.organization_uuid:
                raise forbidden()
            if target is not None and target.organization_uuid != org_uuid:
                raise forbidden(NOT_IN_ORGANIZATION)
            if not user.is_admin and (target is None or target.uuid != user.uuid):
                raise forbidden(NO_PERMISSION)
        elif target is not None and target.uuid != user.uuid:
            if target.organization_uuid == user.organization_uuid:
                raise forbidden(
                    "Please also specify organization when requesting events for a user "
                    "within your organization."
                )
            raise forbidden(NOT_IN_ORGANIZATION)

        events = list(self.store.events.values())
        if org_uuid is not None:
            events = [e for e in events if e.organization_uuid == org_uuid]
        if target is not None:
            events = [e for e in events if e.owner_uuid == target.uuid]
        if status is not None:
            events = [e for e in events if e.status == status]
        if min_start is not None:
            events = [e for e in events if e.start_time >= min_start]
        if max_start is not None:
            events = [e for e in events if e.start_time < max_start]
        if email is not None:
            wanted = email.lower()
            events = [
                e
                for e in events
                if any(i.email.lower() == wanted for i in self.store.invitees_of(e.uuid))
            ]
        events.sort(key=lambda e: e.uuid)
        events.sort(key=lambda e: e.start_time, reverse=sort[0][1])
        return _ok(self._page(request, cursor, events, self.store.render_event))

    def get_event(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        event = self._event(user, uuid)
        return _ok({"resource": self.store.render_event(event)})

    def list_invitees(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        params = QueryParams(request.query)
        status = params.choice("status", ("active", "canceled"))
        sort = params.sort("sort", ("created_at",), "created_at:asc")
        email = params.email("email")
        cursor = self._cursor(request, params)
        params.raise_if_invalid()
        event = self._event(user, uuid)
        invitees = self.store.invitees_of(event.uuid)
        if status is not None:
            invitees = [i for i in invitees if i.status == status]
        if email is not None:
            invitees = [i for i in invitees if i.email.lower() == email.lower()]
        invitees.sort(key=lambda i: (i.created_at, i.uuid), reverse=sort[0][1])
        return _ok(self._page(request, cursor, invitees, self.render.invitee))

    def get_invitee(
        self, request: ApiRequest, user: User, event_uuid: str, invitee_uuid: str
    ) -> ApiResponse:
        event = self._event(user, event_uuid, "You do not have permission to view this event")
        invitee: Invitee | None = self.store.invitees.get(invitee_uuid)
        if invitee is None or invitee.event_uuid != event.uuid:
            raise not_found()
        return _ok({"resource": self.render.invitee(invitee)})

    # Webhook subscriptions --------------------------------------------------------------------
    def create_subscription(self, request: ApiRequest, user: User) -> ApiResponse:
        body = self._json_object(request)
        details: list[dict[str, str]] = []

        def problem(parameter: str, message: str) -> None:
            details.append({"parameter": parameter, "message": message})

        url = body.get("url")
        if url is None:
            problem("url", "is required")
        elif not isinstance(url, str) or not _is_http_url(url):
            problem("url", "must be a valid http or https URL")
        events = body.get("events")
        if events is None:
            problem("events", "is required")
        elif not isinstance(events, list) or not events:
            problem("events", "must be a non-empty list of event names")
        else:
            for name in events:
                if name not in WEBHOOK_EVENTS:
                    problem("events", f"{name!r} is not one of {', '.join(WEBHOOK_EVENTS)}")
            if len({json.dumps(e) for e in events}) != len(events):
                problem("events", "must not contain duplicates")
        org_uuid = self._body_uri(body, "organization", "organizations", problem, required=True)
        scope = body.get("scope")
        if scope is None:
            problem("scope", "is required")
        elif scope not in ("organization", "user"):
            problem("scope", "must be one of organization, user")
        user_uuid = self._body_uri(body, "user", "users", problem, required=scope == "user")
        signing_key = body.get("signing_key")
        if signing_key is not None and (not isinstance(signing_key, str) or not signing_key):
            problem("signing_key", "must be a non-empty string")
        if scope == "user" and isinstance(events, list):
            for name in ORGANIZATION_ONLY_EVENTS:
                if name in events:
                    problem("events", f"{name} is only available with organization scope")
        if details:
            raise invalid(details)

        if org_uuid != user.organization_uuid:
            raise forbidden()
        if self.store.organizations[user.organization_uuid].is_free:
            raise forbidden(UPGRADE_MESSAGE)
        if scope == "user":
            target = self._user(user_uuid)
            if target.organization_uuid != org_uuid:
                raise forbidden()
            if target.uuid != user.uuid:
                raise forbidden(NO_PERMISSION)
        elif not user.is_admin:
            raise forbidden(NO_PERMISSION)
        scoped_user = user_uuid if scope == "user" else None
        for existing in self.store.subscriptions.values():
            if (
                existing.callback_url == url
                and existing.organization_uuid == org_uuid
                and existing.scope == scope
                and existing.user_uuid == scoped_user
            ):
                raise ApiError(409, *errors.ALREADY_EXISTS)
        now = utcnow()
        subscription = Subscription(
            uuid=new_uuid(),
            callback_url=url,
            events=list(events),
            scope=scope,
            organization_uuid=org_uuid,
            user_uuid=scoped_user,
            creator_uuid=user.uuid,
            signing_key=signing_key,
            created_at=now,
            updated_at=now,
        )
        self.store.add_subscription(subscription)
        return _ok({"resource": self.render.subscription(subscription)}, status=201)

    def list_subscriptions(self, request: ApiRequest, user: User) -> ApiResponse:
        params = QueryParams(request.query)
        org_uuid = params.uri("organization", "organizations", required=True)
        scope = params.choice("scope", ("organization", "user"), required=True)
        user_uuid = params.uri("user", "users", required=scope == "user")
        sort = params.sort("sort", ("created_at",), "created_at:asc")
        cursor = self._cursor(request, params)
        params.raise_if_invalid()
        if org_uuid != user.organization_uuid:
            raise forbidden(NO_PERMISSION)
        if scope == "organization" and not user.is_admin:
            raise forbidden()
        if scope == "user":
            target = self._user(user_uuid)
            if target.organization_uuid != org_uuid:
                raise forbidden("Unauthorized")
            if target.uuid != user.uuid and not user.is_admin:
                raise forbidden("Unauthorized")
        subscriptions = [
            s
            for s in self.store.subscriptions.values()
            if s.organization_uuid == org_uuid
            and s.scope == scope
            and (scope == "organization" or s.user_uuid == user_uuid)
        ]
        subscriptions.sort(key=lambda s: (s.created_at, s.uuid), reverse=sort[0][1])
        return _ok(self._page(request, cursor, subscriptions, self.render.subscription))

    def _subscription(self, user: User, uuid: str) -> Subscription:
        """Visible to owners/admins of its organization, and to the user it belongs to."""
        subscription = self.store.subscriptions.get(uuid)
        if subscription is None:
            raise not_found()
        if subscription.organization_uuid != user.organization_uuid or not (
            user.is_admin or user.uuid in (subscription.user_uuid, subscription.creator_uuid)
        ):
            raise forbidden()
        return subscription

    def get_subscription(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        subscription = self._subscription(user, uuid)
        return _ok({"resource": self.render.subscription(subscription)})

    def delete_subscription(self, request: ApiRequest, user: User, uuid: str) -> ApiResponse:
        subscription = self._subscription(user, uuid)
        del self.store.subscriptions[subscription.uuid]
        return ApiResponse(204, None)

    # Body helpers -----------------------------------------------------------------------------
    @staticmethod
    def _json_object(request: ApiRequest) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise invalid([{"message": "The request body is not valid JSON"}]) from None
        if not isinstance(body, dict):
            raise invalid([{"message": "The request body must be a JSON object"}])
        return body

    @staticmethod
    def _body_uri(body, name, collection, problem, *, required: bool) -> str | None:
        value = body.get(name)
        if value is None:
            if required:
                problem(name, "is required")
            return None
        uuid = parse_uri(value, collection) if isinstance(value, str) else None
        if uuid is None:
            problem(name, f"must be a valid {collection.rstrip('s')} URI")
        return uuid


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
