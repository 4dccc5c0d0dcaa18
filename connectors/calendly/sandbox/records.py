"""The sandbox's internal records: what it knows, stored without any base URL.

Records hold UUIDs and relations only; ``resources.py`` turns them into the JSON shapes Calendly
returns. Keeping the two apart lets the same seed serve any host and port, because resource URIs
embed the sandbox's own base URL, which is known only once the server has bound its socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Organization:
    """A Calendly organization; ``plan`` decides whether webhooks are allowed."""

    uuid: str
    name: str
    plan: str  # basic | essentials | professional | teams | enterprise
    stage: str  # trial | free | paid
    signing_key: str  # signs deliveries for subscriptions created without a signing_key
    created_at: datetime
    updated_at: datetime

    @property
    def is_free(self) -> bool:
        # Calendly refuses webhooks below Professional and gives these plans a tenth of the
        # request budget (50 instead of 500 a minute).
        return self.plan in ("basic", "essentials")


@dataclass
class User:
    """A Calendly user and their single organization membership."""

    uuid: str
    name: str
    slug: str
    email: str
    timezone: str
    organization_uuid: str
    role: str  # owner | admin | user
    membership_uuid: str
    created_at: datetime
    updated_at: datetime
    avatar_url: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ("owner", "admin")


@dataclass
class EventType:
    """A bookable event type owned by one user."""

    uuid: str
    owner_uuid: str
    name: str
    slug: str
    duration: int
    active: bool
    color: str
    description: str
    created_at: datetime
    updated_at: datetime
    kind: str = "solo"
    secret: bool = False
    custom_questions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScheduledEvent:
    """A booked meeting; its organization is fixed when it is booked."""

    uuid: str
    owner_uuid: str
    organization_uuid: str
    event_type_uuid: str
    name: str
    start_time: datetime
    end_time: datetime
    status: str  # active | canceled
    location: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    invitee_limit: int = 1
    cancellation: dict[str, Any] | None = None
    guest_emails: list[str] = field(default_factory=list)
    calendar_external_id: str | None = None


@dataclass
class Invitee:
    """A person booked onto a scheduled event; ``extra`` carries caller-supplied fields."""

    uuid: str
    event_uuid: str
    name: str
    first_name: str | None
    last_name: str | None
    email: str
    status: str  # active | canceled
    timezone: str
    created_at: datetime
    updated_at: datetime
    questions_and_answers: list[dict[str, Any]] = field(default_factory=list)
    cancellation: dict[str, Any] | None = None
    text_reminder_number: str | None = None
    no_show_uuid: str | None = None
    no_show_created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoutingFormSubmission:
    """A routing form answer set; it exists only to be delivered by webhooks."""

    uuid: str
    organization_uuid: str
    routing_form_uuid: str
    questions_and_answers: list[dict[str, Any]]
    event_type_uuid: str
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Subscription:
    """A webhook subscription; ``signing_key`` is never returned by the API."""

    uuid: str
    callback_url: str
    events: list[str]
    scope: str  # organization | user
    organization_uuid: str
    user_uuid: str | None
    creator_uuid: str
    signing_key: str | None
    created_at: datetime
    updated_at: datetime
    state: str = "active"
    retry_started_at: datetime | None = None
