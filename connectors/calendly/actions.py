"""Calendly's actions, one declaration each (Calendly API v2, see FACTS.md and the OpenAPI).

Names follow the portal's seed where it has them (``users/me``, ``users``, ``event_types``,
``scheduled_events``, ``scheduled_event_invitees``, ``webhook_subscription``,
``webhook_subscriptions``); the others read as the resource plus what is done to it.
"""

from __future__ import annotations

from connectors.spec import Action, CursorPagination, Param

from . import schemas

PAGES = CursorPagination()  # collection / pagination.next_page_token / page_token / count
WEBHOOK_EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
    "routing_form_submission.created",
)
SCOPES = ("organization", "user")


def _uri(name: str, what: str, **options) -> Param:
    return Param(name, "query", {"type": "string", "format": "uri"}, help=what, **options)


def _uuid(collection: str, what: str) -> Param:
    return Param(
        "uuid",
        "path",
        {"type": "string", "minLength": 1},
        required=True,
        label="UUID or URI",
        help=f"The {what}'s UUID, or its full URI (…/{collection}/<uuid>).",
        uri_collection=collection,
    )


def _count() -> Param:
    return Param(
        "count",
        "query",
        {"type": "integer", "minimum": 1, "maximum": 100},
        help="Rows per page (1-100, Calendly's default 20).",
    )


def _sort(fields: tuple[str, ...], default: str) -> Param:
    return Param(
        "sort",
        "query",
        {"type": "string", "enum": [f"{f}:{d}" for f in fields for d in ("asc", "desc")]},
        help=f"Order of the results (default {default}).",
    )


def _status(what: str) -> Param:
    return Param(
        "status",
        "query",
        {"type": "string", "enum": ["active", "canceled"]},
        help=f"Only {what} with this status.",
    )


_ORGANIZATION = "Organization URI, e.g. ~{GetOrganizationUrl}~."
_USER = "User URI, e.g. ~{GetUserUrl}~."

ACTIONS: tuple[Action, ...] = (
    Action(
        name="users/me",
        label="Get Current User",
        method="GET",
        path="/users/me",
        output_schema=schemas.resource(schemas.USER),
        # The seed's action table lists users/me as POST; Calendly's API defines GET only.
        help="The user the Personal Access Token belongs to, with their organization's URI.",
    ),
    Action(
        name="users",
        label="Get User",
        method="GET",
        path="/users/{uuid}",
        params=(_uuid("users", "user"),),
        output_schema=schemas.resource(schemas.USER),
        help="One user of the organization. GET /users/{uuid}.",
    ),
    Action(
        name="event_types",
        label="List Event Types",
        method="GET",
        path="/event_types",
        params=(
            _uri(
                "user",
                f"List this user's event types (default: yours, unless organization is given). "
                f"{_USER}",
                default="~{GetUserUrl}~",
                default_unless=("organization",),
            ),
            _uri("organization", f"List the organization's event types. {_ORGANIZATION}"),
            Param("active", "query", {"type": "boolean"}, help="Only active (true) or inactive."),
            _sort(("name", "position", "created_at", "updated_at"), "name:asc"),
            _count(),
        ),
        requires_any=(("user", "organization"),),
        output_schema=schemas.collection(schemas.EVENT_TYPE),
        pagination=PAGES,
        help="Event types of a user or of the organization (owners/admins). GET /event_types.",
    ),
    Action(
        name="scheduled_events",
        label="List Scheduled Events",
        method="GET",
        path="/scheduled_events",
        params=(
            _uri(
                "user",
                f"Events hosted by this user (default: yours, unless organization is given). "
                f"{_USER}",
                default="~{GetUserUrl}~",
                default_unless=("organization",),
            ),
            _uri("organization", f"Events of the organization (owners/admins). {_ORGANIZATION}"),
            Param(
                "invitee_email",
                "query",
                {"type": "string", "format": "email"},
                help="Only events with an invitee of this email address.",
            ),
            _status("events"),
            _sort(("start_time",), "start_time:asc"),
            Param(
                "min_start_time",
                "query",
                {"type": "string", "format": "date-time"},
                help="Events starting at or after this time (ISO 8601, UTC).",
            ),
            Param(
                "max_start_time",
                "query",
                {"type": "string", "format": "date-time"},
                help="Events starting before this time (ISO 8601, UTC).",
            ),
            _count(),
        ),
        requires_any=(("user", "organization"),),
        output_schema=schemas.collection(schemas.SCHEDULED_EVENT),
        pagination=PAGES,
        help=(
            "Scheduled events of a user or the organization, all pages up to the limit. "
            "A colleague's events need both user and organization. GET /scheduled_events."
        ),
    ),
    Action(
        name="scheduled_event",
        label="Get Scheduled Event",
        method="GET",
        path="/scheduled_events/{uuid}",
        params=(_uuid("scheduled_events", "scheduled event"),),
        output_schema=schemas.resource(schemas.SCHEDULED_EVENT),
        help="One scheduled event. GET /scheduled_events/{uuid}.",
    ),
    Action(
        name="scheduled_event_invitees",
        label="List Event Invitees",
        method="GET",
        path="/scheduled_events/{uuid}/invitees",
        params=(
            _uuid("scheduled_events", "scheduled event"),
            _status("invitees"),
            _sort(("created_at",), "created_at:asc"),
            Param(
                "email",
                "query",
                {"type": "string", "format": "email"},
                help="Only the invitee with this email address.",
            ),
            _count(),
        ),
        output_schema=schemas.collection(schemas.INVITEE),
        pagination=PAGES,
        help="The invitees of one scheduled event. GET /scheduled_events/{uuid}/invitees.",
    ),
    Action(
        name="webhook_subscription",
        label="Create Webhook Subscription",
        method="POST",
        path="/webhook_subscriptions",
        params=(
            Param(
                "url",
                "body",
                {"type": "string", "format": "uri"},
                required=True,
                label="Callback URL",
                help="Where Calendly POSTs the events (the Processflow's webhook URL).",
            ),
            Param(
                "events",
                "body",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
                    "minItems": 1,
                    "uniqueItems": True,
                },
                required=True,
                help="Events to receive; one events[] row each.",
            ),
            Param(
                "scope",
                "body",
                {"type": "string", "enum": list(SCOPES)},
                required=True,
                help="organization (owners/admins) or user (the token's own user).",
            ),
            Param(
                "organization",
                "body",
                {"type": "string", "format": "uri"},
                required=True,
                default="~{GetOrganizationUrl}~",
                help=_ORGANIZATION,
            ),
            Param(
                "user",
                "body",
                {"type": "string", "format": "uri"},
                help=f"Required for user scope. {_USER}",
            ),
            Param(
                "signing_key",
                "body",
                {"type": "string", "minLength": 1},
                secret=True,
                help="Shared secret Calendly signs deliveries with (Calendly-Webhook-Signature).",
            ),
        ),
        output_schema=schemas.resource(schemas.WEBHOOK_SUBSCRIPTION),
        # Safe to repeat after a 5xx: Calendly refuses a second subscription for the same URL
        # (409 Already Exists), which callers handle by adopting the existing one.
        idempotent=True,
        help=(
            "Subscribe a URL to events. 409 if the URL is subscribed already; 403 on free "
            "plans. POST /webhook_subscriptions."
        ),
    ),
    Action(
        name="webhook_subscriptions",
        label="List Webhook Subscriptions",
        method="GET",
        path="/webhook_subscriptions",
        params=(
            _uri("organization", _ORGANIZATION, required=True, default="~{GetOrganizationUrl}~"),
            Param(
                "scope",
                "query",
                {"type": "string", "enum": list(SCOPES)},
                required=True,
                help="organization or user.",
            ),
            _uri("user", f"Required for user scope. {_USER}"),
            _sort(("created_at",), "created_at:asc"),
            _count(),
        ),
        output_schema=schemas.collection(schemas.WEBHOOK_SUBSCRIPTION),
        pagination=PAGES,
        help="Webhook subscriptions of the organization or a user. GET /webhook_subscriptions.",
    ),
    Action(
        name="webhook_subscription_get",
        label="Get Webhook Subscription",
        method="GET",
        path="/webhook_subscriptions/{uuid}",
        params=(_uuid("webhook_subscriptions", "webhook subscription"),),
        output_schema=schemas.resource(schemas.WEBHOOK_SUBSCRIPTION),
        help="One webhook subscription. GET /webhook_subscriptions/{uuid}.",
    ),
    Action(
        name="webhook_subscription_delete",
        label="Delete Webhook Subscription",
        method="DELETE",
        path="/webhook_subscriptions/{uuid}",
        params=(_uuid("webhook_subscriptions", "webhook subscription"),),
        output_schema={"type": "null"},
        help="Stop deliveries to a subscription. DELETE /webhook_subscriptions/{uuid} (204).",
    ),
)
