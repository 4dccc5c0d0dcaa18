"""The sandbox's whole mutable world, behind one lock.

Request handlers, webhook senders and the Python API run on different threads; every read or
write of the store happens under ``Store.lock`` (re-entrant, so helpers can nest). ``changed``
is a condition on the same lock that is notified whenever a delivery changes state, which is
what ``wait_for_deliveries`` sleeps on.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox import faults
from connectors.sandbox.faults import Fault
from connectors.sandbox.journal import Delivery, Exchange
from connectors.sandbox.ratelimit import RateLimiter, RateStatus

from . import seed
from .pagination import Paginator
from .records import (
    Invitee,
    RoutingFormSubmission,
    ScheduledEvent,
    Subscription,
    User,
)
from .resources import Renderer

# Enough for a long benchmark's worth of exchanges without growing without bound.
MAX_EXCHANGES = 50_000
_UUID_ALPHABET = string.ascii_uppercase + string.digits


def new_uuid() -> str:
    """A fresh Calendly-style UUID (16 upper-case alphanumerics)."""
    return "".join(secrets.choice(_UUID_ALPHABET) for _ in range(16))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Records, credentials, budgets, faults and journals of one sandbox."""

    def __init__(self, rate_limit_per_minute: int) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.renderer = Renderer("http://127.0.0.1")  # replaced once the server has a port
        self.default_rate_limit = rate_limit_per_minute
        self.paginator = Paginator()
        self.limiter = RateLimiter()
        self.exchanges: deque[Exchange] = deque(maxlen=MAX_EXCHANGES)
        # Bumped by every reset so background senders notice their world is gone.
        self.generation = 0
        self._delivery_counter = 0
        self.load_seed()

    # Lifecycle --------------------------------------------------------------------------------
    def set_base_url(self, base_url: str) -> None:
        with self.lock:
            self.renderer = Renderer(base_url)

    def load_seed(self) -> None:
        """Forget everything that happened and start again from the seed."""
        data = seed.build()
        with self.lock:
            self.organizations = data.organizations
            self.users = data.users
            self.event_types = data.event_types
            self.events = data.events
            self.invitees = data.invitees
            self.subscriptions = data.subscriptions
            self.routing_form_submissions = data.routing_form_submissions
            self.tokens = data.tokens
            self.invitees_by_event: dict[str, list[Invitee]] = {}
            for invitee in self.invitees.values():
                self.invitees_by_event.setdefault(invitee.event_uuid, []).append(invitee)
            self.rate_limit = self.default_rate_limit
            self.limiter.clear()
            self.faults: list[Fault] = []
            self.deliveries: dict[str, Delivery] = {}
            self.exchanges.clear()
            self.generation += 1
            self.changed.notify_all()

    # Credentials and budgets ------------------------------------------------------------------
    def user_for_token(self, token: str) -> User | None:
        with self.lock:
            uuid = self.tokens.get(token)
            return self.users.get(uuid) if uuid else None

    def limit_for(self, user: User | None) -> int:
        """Per-minute budget: free plans get a tenth (Calendly: 50 instead of 500)."""
        with self.lock:
            if user is not None and self.organizations[user.organization_uuid].is_free:
                return max(1, self.rate_limit // 10)
            return self.rate_limit

    def consume_budget(self, token: str, user: User | None, now: float) -> RateStatus:
        with self.lock:
            return self.limiter.consume(token, self.limit_for(user), now)

    def peek_budget(self, token: str, user: User | None, now: float) -> RateStatus:
        with self.lock:
            return self.limiter.peek(token, self.limit_for(user), now)

    # Faults -----------------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Use up one application of the oldest fault that matches, if any."""
        with self.lock:
            return faults.take(self.faults, method, path)

    # Calendar queries -------------------------------------------------------------------------
    def invitees_of(self, event_uuid: str) -> list[Invitee]:
        with self.lock:
            return list(self.invitees_by_event.get(event_uuid, ()))

    def render_event(self, event: ScheduledEvent) -> dict[str, Any]:
        with self.lock:
            owner = self.users[event.owner_uuid]
            return self.renderer.event(event, owner, self.invitees_of(event.uuid))

    # Calendar changes (what webhooks report) --------------------------------------------------
    def book(self, user_uuid: str) -> tuple[ScheduledEvent, Invitee]:
        """A new one-on-one booking with the user's first active event type, a week ahead."""
        with self.lock:
            user = self.users[user_uuid]
            event_type = next(
                t for t in self.event_types.values() if t.owner_uuid == user_uuid and t.active
            )
            now = utcnow()
            start = (now + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
            event = ScheduledEvent(
                uuid=new_uuid(),
                owner_uuid=user_uuid,
                organization_uuid=user.organization_uuid,
                event_type_uuid=event_type.uuid,
                name=event_type.name,
                start_time=start,
                end_time=start + timedelta(minutes=event_type.duration),
                status="active",
                location={"type": "physical", "location": "Acme HQ, Room 4"},
                created_at=now,
                updated_at=now,
            )
            self.events[event.uuid] = event
            return event, self.add_invitee(event)

    def add_invitee(self, event: ScheduledEvent) -> Invitee:
        with self.lock:
            now = utcnow()
            number = len(self.invitees) + 1
            invitee = Invitee(
                uuid=new_uuid(),
                event_uuid=event.uuid,
                name=f"Webhook Invitee {number}",
                first_name=None,
                last_name=None,
                email=f"webhook.invitee.{number}@example.com",
                status="active",
                timezone="Europe/Berlin",
                created_at=now,
                updated_at=now,
            )
            self.invitees[invitee.uuid] = invitee
            self.invitees_by_event.setdefault(event.uuid, []).append(invitee)
            return invitee

    def cancel_invitee(self, invitee: Invitee) -> None:
        """Cancel as the invitee would; the event is canceled once nobody is left on it."""
        with self.lock:
            now = utcnow()
            invitee.status = "canceled"
            invitee.updated_at = now
            invitee.cancellation = {
                "canceled_by": invitee.name,
                "reason": "Canceled from the sandbox",
                "canceler_type": "invitee",
                "created_at": now,
            }
            event = self.events[invitee.event_uuid]
            if all(i.status == "canceled" for i in self.invitees_of(event.uuid)):
                event.status = "canceled"
                event.cancellation = dict(invitee.cancellation)
                event.updated_at = now

    def set_no_show(self, invitee: Invitee, no_show: bool) -> None:
        with self.lock:
            now = utcnow()
            invitee.no_show_uuid = new_uuid() if no_show else None
            invitee.no_show_created_at = now if no_show else None
            invitee.updated_at = now

    def submit_routing_form(self, organization_uuid: str) -> RoutingFormSubmission:
        with self.lock:
            now = utcnow()
            event_type = next(
                t
                for t in self.event_types.values()
                if self.users[t.owner_uuid].organization_uuid == organization_uuid and t.active
            )
            submission = RoutingFormSubmission(
                uuid=new_uuid(),
                organization_uuid=organization_uuid,
                routing_form_uuid=seed.ROUTING_FORM_UUID,
                questions_and_answers=[
                    {
                        "question_uuid": "123e4567-e89b-12d3-a456-426614174000",
                        "question": "What is your industry?",
                        "answer": "IT & Software",
                    }
                ],
                event_type_uuid=event_type.uuid,
                created_at=now,
                updated_at=now,
            )
            self.routing_form_submissions[submission.uuid] = submission
            return submission

    # Subscriptions ----------------------------------------------------------------------------
    def add_subscription(self, subscription: Subscription) -> None:
        with self.lock:
            self.subscriptions[subscription.uuid] = subscription

    def signing_key_for(self, subscription: Subscription) -> str:
        with self.lock:
            return (
                subscription.signing_key
                or self.organizations[subscription.organization_uuid].signing_key
            )

    # Deliveries -------------------------------------------------------------------------------
    def new_delivery_id(self) -> str:
        with self.lock:
            self._delivery_counter += 1
            return f"DLV{self._delivery_counter:013d}"

    def pending_deliveries(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries.values() if d.state == "pending"]

    def record_exchange(self, exchange: Exchange, *, generation: int) -> None:
        """Log an exchange, unless a reset happened while it was being answered: a request
        stalled across a reset belongs to the world before it, not to the next test's log."""
        with self.lock:
            if generation == self.generation:
                self.exchanges.append(exchange)
