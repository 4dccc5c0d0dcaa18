"""The sandbox's fixed cast and calendar, as constants tests and demos can name.

Everything here is deterministic: the same UUIDs, tokens and timestamps on every run, so a test
can say ``seed.MULTI_INVITEE_EVENT_UUID`` instead of discovering data first. UUIDs follow
Calendly's style (16 upper-case alphanumerics). The tokens are fake personal access tokens that
only this sandbox accepts; they are shaped like Calendly's (long JWT-looking strings) so that
code handling real tokens (length limits, masking, encryption) meets realistic values.

Cast:

* organization **Acme** (``ORGANIZATION_UUID``, Professional plan): an owner, an admin and a
  plain member (role ``user``);
* organization **Freelance** (``FREE_ORGANIZATION_UUID``, free ``basic`` plan): one user, whose
  webhook subscriptions are refused with 403 "Please upgrade your Calendly account to
  Professional";
* organization **Globex** (``OTHER_ORGANIZATION_UUID``): an outsider, to prove that another
  organization's data is out of reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .records import (
    EventType,
    Invitee,
    Organization,
    RoutingFormSubmission,
    ScheduledEvent,
    Subscription,
    User,
)

ORGANIZATION_UUID = "ORGACMESANDBOX01"
FREE_ORGANIZATION_UUID = "ORGFREESANDBOX02"
OTHER_ORGANIZATION_UUID = "ORGOTHERSANDBX03"

OWNER_USER_UUID = "USEROWNER0000001"
ADMIN_USER_UUID = "USERADMIN0000002"
MEMBER_USER_UUID = "USERMEMBER000003"
FREE_PLAN_USER_UUID = "USERFREE00000004"
OTHER_ORG_USER_UUID = "USEROTHER0000005"

# Fake personal access tokens (sandbox only; printing them is fine, real ones never are).
OWNER_TOKEN = (
    "eyJraWQiOiJzYW5kYm94IiwidHlwIjoiUEFUIiwiYWxnIjoiRVMyNTYifQ."  # noqa: S105 (fake)
    "eyJpc3MiOiJodHRwczovL2F1dGguY2FsZW5kbHkuY29tIiwianRpIjoiMTMyYzFkNjgzZTRhNWFmNGY1YmNlNGI5"
    "NDBlNjFmYzEiLCJ1c2VyX3V1aWQiOiJvd25lciJ9."
    "FuBfWDzYDSmb575mzMUKhitUWEsOcZL9hBCkejrDts2x0g9qaLxt523BJOUWreAMVqGWzDlkWiIWrzdTX_TFxw"
)
ADMIN_TOKEN = (
    "eyJraWQiOiJzYW5kYm94IiwidHlwIjoiUEFUIiwiYWxnIjoiRVMyNTYifQ."  # noqa: S105 (fake)
    "eyJpc3MiOiJodHRwczovL2F1dGguY2FsZW5kbHkuY29tIiwianRpIjoiMDAzMDIzMzE4NDhlYjM1MTEyMDVkZDkx"
    "ZTdjOWIwNmMiLCJ1c2VyX3V1aWQiOiJhZG1pbiJ9."
    "7YA1U0Gd8BfNviVQhHTNCSuFJLctn70OAkPjdCG9R6Gi83yOFPyMuizGpkmjH2GXYT-EGMH_f3cU-w9seAdy2g"
)
MEMBER_TOKEN = (
    "eyJraWQiOiJzYW5kYm94IiwidHlwIjoiUEFUIiwiYWxnIjoiRVMyNTYifQ."  # noqa: S105 (fake)
    "eyJpc3MiOiJodHRwczovL2F1dGguY2FsZW5kbHkuY29tIiwianRpIjoiZmEwMzQxYzU4NjY0ODM4MWJjMmViOWE0"
    "ZmFmMGU5N2YiLCJ1c2VyX3V1aWQiOiJtZW1iZXIifQ."
    "muTDlZx4Ap8-VqpLj4RuNYEJow6w9rGFgP_DIk-4YTFMvhw5PNR5b76AZdFzsyGm2Pi0Klo0iNEI8Bb7LPoYkQ"
)
FREE_PLAN_TOKEN = (
    "eyJraWQiOiJzYW5kYm94IiwidHlwIjoiUEFUIiwiYWxnIjoiRVMyNTYifQ."  # noqa: S105 (fake)
    "eyJpc3MiOiJodHRwczovL2F1dGguY2FsZW5kbHkuY29tIiwianRpIjoiMmE2MzI0Y2MyYWFjMGZiNmU5MTAyMmIz"
    "ZDYwMTk0ZTMiLCJ1c2VyX3V1aWQiOiJmcmVlIn0."
    "MSiwePovoi5AkfJYFQbaEZrBiwyhwaWLL6VwV1bYPlh3LNOfX1SL5KBPKU4tRK6_x-CESGbat4LtWlSQ6xuD-A"
)
OTHER_ORG_TOKEN = (
    "eyJraWQiOiJzYW5kYm94IiwidHlwIjoiUEFUIiwiYWxnIjoiRVMyNTYifQ."  # noqa: S105 (fake)
    "eyJpc3MiOiJodHRwczovL2F1dGguY2FsZW5kbHkuY29tIiwianRpIjoiNDY0ODM4NTA4MjdhNWY0NGFmODUwYjFj"
    "MzIxYzkxYzAiLCJ1c2VyX3V1aWQiOiJvdGhlciJ9."
    "z7AKXfncyfKfUa1dI5tZ1TCe1PDAGa4HgnqJMe0tCLv2JDTKkN4kT8zt9eJIAtoHm04FkUs7RGbC2PiYCoTB6Q"
)

TOKENS: dict[str, str] = {
    OWNER_TOKEN: OWNER_USER_UUID,
    ADMIN_TOKEN: ADMIN_USER_UUID,
    MEMBER_TOKEN: MEMBER_USER_UUID,
    FREE_PLAN_TOKEN: FREE_PLAN_USER_UUID,
    OTHER_ORG_TOKEN: OTHER_ORG_USER_UUID,
}

# Keys that sign deliveries of subscriptions created without their own signing_key.
ORGANIZATION_SIGNING_KEY = "I7UKzMzHw2oxzOhQgNxigb0Q1Kaf4Fr4xfCa-P4Lj9U"
FREE_ORGANIZATION_SIGNING_KEY = "BUcSp0r2aOy_ccm87j_LeoJoZGKbxOQIVjP2nbghnVw"
OTHER_ORGANIZATION_SIGNING_KEY = "EeLKmQp7XP5x5YGSuGY7nI_iPxR8qMS3s2x9nFLT108"

ROUTING_FORM_UUID = "RFORMACME0000001"

OWNER_EVENT_COUNT = 45
ADMIN_EVENT_COUNT = 5
MEMBER_EVENT_COUNT = 8
FREE_PLAN_EVENT_COUNT = 3
OTHER_ORG_EVENT_COUNT = 4

REPEAT_INVITEE_EMAIL = "repeat.customer@example.com"

_CALENDAR_START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday
_USER_TAGS = {
    OWNER_USER_UUID: "OWNR",
    ADMIN_USER_UUID: "ADMN",
    MEMBER_USER_UUID: "MMBR",
    FREE_PLAN_USER_UUID: "FREE",
    OTHER_ORG_USER_UUID: "OTHR",
}


def event_type_uuid(user_uuid: str, index: int) -> str:
    """The UUID of a user's ``index``-th seeded event type (0-based)."""
    return f"ET{_USER_TAGS[user_uuid]}{index:010d}"


def scheduled_event_uuid(user_uuid: str, index: int) -> str:
    """The UUID of a user's ``index``-th seeded scheduled event (0-based, by start time)."""
    return f"EV{_USER_TAGS[user_uuid]}{index:010d}"


def invitee_uuid(user_uuid: str, event_index: int, index: int) -> str:
    """The UUID of the ``index``-th invitee of a user's ``event_index``-th scheduled event."""
    return f"IV{_USER_TAGS[user_uuid]}{event_index:05d}{index:05d}"


OWNER_EVENT_TYPE_UUIDS = tuple(event_type_uuid(OWNER_USER_UUID, i) for i in range(4))
INACTIVE_EVENT_TYPE_UUID = event_type_uuid(OWNER_USER_UUID, 3)
OWNER_EVENT_UUIDS = tuple(
    scheduled_event_uuid(OWNER_USER_UUID, i) for i in range(OWNER_EVENT_COUNT)
)
# Owner event 0 has three invitees, the third of whom canceled; event 3 is canceled.
MULTI_INVITEE_EVENT_UUID = scheduled_event_uuid(OWNER_USER_UUID, 0)
MULTI_INVITEE_EVENT_INVITEE_UUIDS = tuple(invitee_uuid(OWNER_USER_UUID, 0, j) for j in range(3))
CANCELED_EVENT_UUID = scheduled_event_uuid(OWNER_USER_UUID, 3)
MEMBER_EVENT_UUID = scheduled_event_uuid(MEMBER_USER_UUID, 0)
OTHER_ORG_EVENT_UUID = scheduled_event_uuid(OTHER_ORG_USER_UUID, 0)
OTHER_ORG_EVENT_TYPE_UUID = event_type_uuid(OTHER_ORG_USER_UUID, 0)

_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_LOCATIONS = (
    {"type": "physical", "location": "Acme HQ, Room 4"},
    {
        "type": "google_conference",
        "status": "pushed",
        "join_url": "https://calendly.com/events/SANDBOX/google_meet",
    },
)


@dataclass
class SeedData:
    """One fresh copy of every seeded record, keyed by UUID (insertion order is meaningful)."""

    organizations: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    event_types: dict[str, EventType] = field(default_factory=dict)
    events: dict[str, ScheduledEvent] = field(default_factory=dict)
    invitees: dict[str, Invitee] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    routing_form_submissions: dict[str, RoutingFormSubmission] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=lambda: dict(TOKENS))


def _at(days: float) -> datetime:
    return datetime(2023, 6, 1, 12, 0, tzinfo=UTC) + timedelta(days=days)


def _organizations() -> list[Organization]:
    return [
        Organization(
            ORGANIZATION_UUID,
            "Acme",
            "professional",
            "paid",
            ORGANIZATION_SIGNING_KEY,
            _at(0),
            _at(30),
        ),
        Organization(
            FREE_ORGANIZATION_UUID,
            "Freelance",
            "basic",
            "free",
            FREE_ORGANIZATION_SIGNING_KEY,
            _at(10),
            _at(10),
        ),
        Organization(
            OTHER_ORGANIZATION_UUID,
            "Globex",
            "teams",
            "paid",
            OTHER_ORGANIZATION_SIGNING_KEY,
            _at(20),
            _at(25),
        ),
    ]


def _users() -> list[User]:
    def user(uuid, name, slug, org, role, n, tz="Europe/Berlin"):
        return User(
            uuid=uuid,
            name=name,
            slug=slug,
            email=f"{slug.replace('-', '.')}@example.com",
            timezone=tz,
            organization_uuid=org,
            role=role,
            membership_uuid=f"MEMBERSHIP{n:06d}",
            created_at=_at(n),
            updated_at=_at(n + 40),
            avatar_url=None if n % 2 else f"https://calendly.com/avatars/{slug}.png",
        )

    return [
        user(OWNER_USER_UUID, "Olivia Owner", "olivia-owner", ORGANIZATION_UUID, "owner", 1),
        user(ADMIN_USER_UUID, "Adam Admin", "adam-admin", ORGANIZATION_UUID, "admin", 2),
        user(MEMBER_USER_UUID, "Mia Member", "mia-member", ORGANIZATION_UUID, "user", 3, "UTC"),
        user(FREE_PLAN_USER_UUID, "Fred Free", "fred-free", FREE_ORGANIZATION_UUID, "owner", 4),
        user(
            OTHER_ORG_USER_UUID,
            "Otto Outsider",
            "otto-outsider",
            OTHER_ORGANIZATION_UUID,
            "owner",
            5,
            "America/New_York",
        ),
    ]


# (name, duration, active, kind) per user; the owner's third type is a group event.
_EVENT_TYPES = {
    OWNER_USER_UUID: [
        ("15 Minute Meeting", 15, True, "solo"),
        ("30 Minute Meeting", 30, True, "solo"),
        ("Team Workshop", 60, True, "group"),
        ("Legacy Consultation", 45, False, "solo"),
    ],
    ADMIN_USER_UUID: [("Admin Sync", 30, True, "solo"), ("Office Hours", 60, True, "group")],
    MEMBER_USER_UUID: [("Intro Call", 20, True, "solo"), ("Deep Dive", 90, False, "solo")],
    FREE_PLAN_USER_UUID: [("Free Chat", 30, True, "solo")],
    OTHER_ORG_USER_UUID: [("Globex Demo", 30, True, "solo")],
}
_EVENT_COUNTS = {
    OWNER_USER_UUID: OWNER_EVENT_COUNT,
    ADMIN_USER_UUID: ADMIN_EVENT_COUNT,
    MEMBER_USER_UUID: MEMBER_EVENT_COUNT,
    FREE_PLAN_USER_UUID: FREE_PLAN_EVENT_COUNT,
    OTHER_ORG_USER_UUID: OTHER_ORG_EVENT_COUNT,
}
_COLORS = ("#1a73e8", "#8247f5", "#0ae8f0", "#17e885", "#ff4f00")


def _event_types(owner: User) -> list[EventType]:
    types = []
    for i, (name, duration, active, kind) in enumerate(_EVENT_TYPES[owner.uuid]):
        slug = name.lower().replace(" ", "-")
        types.append(
            EventType(
                uuid=event_type_uuid(owner.uuid, i),
                owner_uuid=owner.uuid,
                name=name,
                slug=slug,
                duration=duration,
                active=active,
                color=_COLORS[i % len(_COLORS)],
                description=f"{name} with {owner.name}",
                created_at=owner.created_at + timedelta(days=i + 1),
                updated_at=owner.created_at + timedelta(days=i + 60),
                kind=kind,
                secret=(i == 1),
                custom_questions=[
                    {
                        "name": "What would you like to discuss?",
                        "type": "text",
                        "position": 0,
                        "enabled": True,
                        "required": False,
                        "answer_choices": [],
                        "include_other": False,
                    }
                ],
            )
        )
    return types


def _invitee_count(owner_uuid: str, index: int) -> int:
    if owner_uuid != OWNER_USER_UUID:
        return 1
    if index % 7 == 0:
        return 3
    if index % 3 == 0:
        return 2
    return 1


def _calendar(owner: User, types: list[EventType]) -> tuple[list[ScheduledEvent], list[Invitee]]:
    """Events every other day at varying hours; every fifth (index 3, 8, ...) canceled."""
    events, invitees = [], []
    active_types = [t for t in types if t.active]
    group_type = next((t for t in active_types if t.kind == "group"), None)
    solo_types = [t for t in active_types if t.kind == "solo"]
    offset = list(_USER_TAGS).index(owner.uuid)
    for i in range(_EVENT_COUNTS[owner.uuid]):
        n_invitees = _invitee_count(owner.uuid, i)
        event_type = (
            group_type if (n_invitees > 1 and group_type) else solo_types[i % 2 % len(solo_types)]
        )
        start = _CALENDAR_START + timedelta(days=2 * i + offset, hours=i % 4)
        created = start - timedelta(days=7, hours=3)
        canceled = i % 5 == 3
        uuid = scheduled_event_uuid(owner.uuid, i)
        cancellation = None
        if canceled:
            cancellation = {
                "canceled_by": owner.name,
                "reason": "Host is unavailable",
                "canceler_type": "host",
                "created_at": created + timedelta(days=2),
            }
        events.append(
            ScheduledEvent(
                uuid=uuid,
                owner_uuid=owner.uuid,
                organization_uuid=owner.organization_uuid,
                event_type_uuid=event_type.uuid,
                name=event_type.name,
                start_time=start,
                end_time=start + timedelta(minutes=event_type.duration),
                status="canceled" if canceled else "active",
                location=dict(_LOCATIONS[i % len(_LOCATIONS)]),
                created_at=created,
                updated_at=created + timedelta(days=2 if canceled else 0),
                invitee_limit=10 if event_type.kind == "group" else 1,
                cancellation=cancellation,
                guest_emails=["guest.observer@example.com"] if i % 6 == 1 else [],
                calendar_external_id=f"sandbox{uuid.lower()}",
            )
        )
        for j in range(n_invitees):
            first = _FIRST_NAMES[(i + j) % len(_FIRST_NAMES)]
            last = _LAST_NAMES[(i * 3 + j) % len(_LAST_NAMES)]
            email = f"{first}.{last}.{i}.{j}@example.com".lower()
            if j == 0 and i % 9 == 0:
                email = REPEAT_INVITEE_EMAIL
            status, invitee_cancellation = "active", None
            if canceled:
                status, invitee_cancellation = "canceled", cancellation
            elif n_invitees == 3 and j == 2:
                status = "canceled"
                invitee_cancellation = {
                    "canceled_by": f"{first} {last}",
                    "reason": "Something came up",
                    "canceler_type": "invitee",
                    "created_at": created + timedelta(days=1),
                }
            booked = created + timedelta(minutes=5 * j)
            invitees.append(
                Invitee(
                    uuid=invitee_uuid(owner.uuid, i, j),
                    event_uuid=uuid,
                    name=f"{first} {last}",
                    first_name=first if j % 2 else None,
                    last_name=last if j % 2 else None,
                    email=email,
                    status=status,
                    timezone="Europe/London" if j else "America/Chicago",
                    created_at=booked,
                    updated_at=booked if status == "active" else created + timedelta(days=1),
                    questions_and_answers=[
                        {
                            "question": "What would you like to discuss?",
                            "answer": f"Topic number {i}",
                            "position": 0,
                        }
                    ],
                    cancellation=invitee_cancellation,
                    text_reminder_number="+1 404-555-0100" if i % 4 == 2 else None,
                )
            )
    return events, invitees


def build() -> SeedData:
    """Return a fresh, independent copy of the seed (callers may mutate it freely)."""
    data = SeedData()
    for org in _organizations():
        data.organizations[org.uuid] = org
    for user in _users():
        data.users[user.uuid] = user
        types = _event_types(user)
        data.event_types.update((t.uuid, t) for t in types)
        events, invitees = _calendar(user, types)
        data.events.update((e.uuid, e) for e in events)
        data.invitees.update((i.uuid, i) for i in invitees)
    return data
