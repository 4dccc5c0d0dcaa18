"""Webhook deliveries as Calendly makes them: signed POSTs, retried, then the hook disabled.

``Dispatcher.fire`` changes the calendar the way the event says (a booking, a cancellation, a
no-show mark, a routing form submission), then hands one ``Delivery`` per matching active
subscription to its own background thread. Each attempt is signed afresh
(``Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>``) over the
same body. Failed attempts (non-2xx, refused connection, timeout) are retried after the
configured delays; when the last one fails the subscription is disabled, as Calendly disables a
hook after 24 hours of failures. Delays are configurable so tests take seconds, not a day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from connectors.sandbox.journal import Delivery
from connectors.sandbox.outbound import post_once

from . import seed
from .records import Invitee, ScheduledEvent, Subscription
from .resources import timestamp
from .state import Store, utcnow

USER_AGENT = "Calendly-Webhooks/2.0 (+https://developer.calendly.com; sandbox)"
INVITEE_EVENTS = (
    "invitee.created",
    "invitee.canceled",
    "invitee_no_show.created",
    "invitee_no_show.deleted",
)
EVENTS = (*INVITEE_EVENTS, "routing_form_submission.created")
# Invitee fields an override may change on the stored record (so the API agrees with the hook).
_INVITEE_FIELDS = (
    "name",
    "first_name",
    "last_name",
    "email",
    "timezone",
    "text_reminder_number",
    "questions_and_answers",
)


def sign(signing_key: str, body: bytes, timestamp_seconds: int) -> str:
    """The ``Calendly-Webhook-Signature`` header value for ``body`` sent at that time."""
    message = f"{timestamp_seconds}.".encode() + body
    digest = hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp_seconds},v1={digest}"


class Dispatcher:
    """Turns fired events into deliveries and runs their retry loops."""

    def __init__(
        self,
        store: Store,
        retry_delays: Sequence[float],
        timeout: tuple[float, float],
    ) -> None:
        self.store = store
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self.connect_timeout, self.read_timeout = (float(t) for t in timeout)
        # Set to wake sleeping senders for good (reset or stop); replaced after a reset.
        self._cancel = threading.Event()

    def cancel_all(self, *, restart: bool = True) -> None:
        """Abandon every pending delivery (their threads exit at their next step)."""
        self._cancel.set()
        if restart:
            self._cancel = threading.Event()

    # Firing -----------------------------------------------------------------------------------
    def fire(
        self,
        event: str,
        *,
        user_uuid: str | None = None,
        scheduled_event_uuid: str | None = None,
        invitee_uuid: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> list[str]:
        """Make ``event`` happen and deliver it; returns the new deliveries' ids.

        ``user_uuid`` picks whose calendar changes (default: the seed's owner);
        ``scheduled_event_uuid`` books onto an existing event (invitee.created);
        ``invitee_uuid`` picks the invitee to cancel or mark (the other invitee events), else a
        fresh booking is made first. ``payload`` entries override fields of the payload.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
        overrides = dict(payload or {})
        store = self.store
        with store.lock:
            if event in INVITEE_EVENTS:
                organization_uuid, owner_uuid, body_payload = self._invitee_event(
                    event, user_uuid, scheduled_event_uuid, invitee_uuid, overrides
                )
            else:
                user = store.users.get(user_uuid or seed.OWNER_USER_UUID)
                if user is None:
                    raise ValueError(f"unknown user {user_uuid!r}")
                submission = store.submit_routing_form(user.organization_uuid)
                submission.extra.update(overrides)
                organization_uuid, owner_uuid = user.organization_uuid, None
                body_payload = store.renderer.routing_form_submission(submission)
            created_at = timestamp(utcnow())
            deliveries = []
            for subscription in self._matching(event, organization_uuid, owner_uuid):
                body = {
                    "event": event,
                    "created_at": created_at,
                    "created_by": store.renderer.user_uri(subscription.creator_uuid),
                    "payload": body_payload,
                }
                delivery = Delivery(
                    id=store.new_delivery_id(),
                    subscription_uri=store.renderer.subscription_uri(subscription.uuid),
                    url=subscription.callback_url,
                    event=event,
                    body=json.dumps(body, separators=(",", ":")).encode(),
                )
                store.deliveries[delivery.id] = delivery
                deliveries.append((delivery.id, subscription.uuid))
            generation = store.generation
        cancel = self._cancel
        for delivery_id, subscription_uuid in deliveries:
            threading.Thread(
                target=self._deliver,
                args=(delivery_id, subscription_uuid, generation, cancel),
                name=f"calendly-sandbox-{delivery_id}",
                daemon=True,
            ).start()
        return [delivery_id for delivery_id, _ in deliveries]

    def _invitee_event(
        self,
        event: str,
        user_uuid: str | None,
        scheduled_event_uuid: str | None,
        invitee_uuid: str | None,
        overrides: dict[str, Any],
    ) -> tuple[str, str, dict[str, Any]]:
        store = self.store
        invitee: Invitee | None = None
        if invitee_uuid is not None and event != "invitee.created":
            invitee = store.invitees.get(invitee_uuid)
            if invitee is None:
                raise ValueError(f"unknown invitee {invitee_uuid!r}")
        elif scheduled_event_uuid is not None:
            scheduled: ScheduledEvent | None = store.events.get(scheduled_event_uuid)
            if scheduled is None:
                raise ValueError(f"unknown scheduled event {scheduled_event_uuid!r}")
            invitee = store.add_invitee(scheduled)
        else:
            owner = user_uuid or seed.OWNER_USER_UUID
            if owner not in store.users:
                raise ValueError(f"unknown user {owner!r}")
            _, invitee = store.book(owner)
        for key, value in overrides.items():
            if key in _INVITEE_FIELDS:
                setattr(invitee, key, value)
            else:
                invitee.extra[key] = value
        if event == "invitee.canceled":
            store.cancel_invitee(invitee)
        elif event == "invitee_no_show.created":
            store.set_no_show(invitee, True)
        elif event == "invitee_no_show.deleted":
            store.set_no_show(invitee, False)
        scheduled_event = store.events[invitee.event_uuid]
        payload = store.renderer.invitee(invitee)
        # Calendly's current payloads embed the scheduled event, saving receivers a lookup.
        payload["scheduled_event"] = store.render_event(scheduled_event)
        payload.update({k: v for k, v in overrides.items() if k not in _INVITEE_FIELDS})
        return scheduled_event.organization_uuid, scheduled_event.owner_uuid, payload

    def _matching(
        self, event: str, organization_uuid: str, owner_uuid: str | None
    ) -> list[Subscription]:
        return [
            s
            for s in self.store.subscriptions.values()
            if s.state == "active"
            and event in s.events
            and s.organization_uuid == organization_uuid
            and (s.scope == "organization" or (owner_uuid and s.user_uuid == owner_uuid))
        ]

    # Sending ----------------------------------------------------------------------------------
    def _deliver(
        self,
        delivery_id: str,
        subscription_uuid: str,
        generation: int,
        cancel: threading.Event,
    ) -> None:
        store = self.store
        for attempt in range(len(self.retry_delays) + 1):
            with store.lock:
                if store.generation != generation:
                    return
                delivery = store.deliveries[delivery_id]
                subscription = store.subscriptions.get(subscription_uuid)
                if subscription is None:  # deleted meanwhile: nobody to deliver to any more
                    self._finish(delivery, "failed")
                    return
                signing_key = store.signing_key_for(subscription)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Calendly-Webhook-Signature": sign(signing_key, delivery.body, int(time.time())),
            }
            outcome = post_once(
                delivery.url, delivery.body, headers,
                connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            )  # fmt: skip
            with store.lock:
                if store.generation != generation:
                    return
                delivery.headers = headers
                delivery.attempts.append((outcome, time.time()))
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    subscription.retry_started_at = None
                    self._finish(delivery, "delivered")
                    return
                now = utcnow()
                if attempt == len(self.retry_delays):
                    subscription.state = "disabled"
                    subscription.updated_at = now
                    self._finish(delivery, "failed")
                    return
                if subscription.retry_started_at is None:
                    subscription.retry_started_at = now
                    subscription.updated_at = now
                store.changed.notify_all()
            if cancel.wait(self.retry_delays[attempt]):
                return

    def _finish(self, delivery: Delivery, state: str) -> None:
        delivery.state = state
        self.store.changed.notify_all()

    # Waiting ----------------------------------------------------------------------------------
    def wait(self, timeout: float) -> list[Delivery]:
        """Block until no delivery is pending; TimeoutError names the ones still pending."""
        store = self.store
        with store.changed:
            done = store.changed.wait_for(lambda: not store.pending_deliveries(), timeout)
            if not done:
                pending = ", ".join(repr(d) for d in store.pending_deliveries())
                raise TimeoutError(f"deliveries still pending after {timeout}s: {pending}")
            return list(store.deliveries.values())
