"""Render records as the JSON resources Calendly API v2 returns.

Every URI is built on the sandbox's own base URL, as Calendly builds them on
``https://api.calendly.com``, so a client that follows URIs it was given stays on the sandbox.
Field lists follow the schemas in the official OpenAPI document (``User``, ``EventType``,
``Event``, ``Invitee``, ``OrganizationMembership``, ``WebhookSubscription``,
``RoutingFormSubmission``), including the required-but-nullable fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .records import (
    EventType,
    Invitee,
    RoutingFormSubmission,
    ScheduledEvent,
    Subscription,
    User,
)

_KIND_DESCRIPTIONS = {"solo": "One-on-One", "group": "Group"}
_NULL_TRACKING = {
    "utm_campaign": None,
    "utm_source": None,
    "utm_medium": None,
    "utm_content": None,
    "utm_term": None,
    "salesforce_uuid": None,
}


def timestamp(moment: datetime | None) -> str | None:
    """Calendly's timestamp format: UTC with microseconds, e.g. 2020-01-02T03:04:05.678123Z."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Renderer:
    """Knows the base URL and how each record looks on the wire."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    # URIs -------------------------------------------------------------------------------------
    def user_uri(self, uuid: str) -> str:
        return f"{self.base_url}/users/{uuid}"

    def organization_uri(self, uuid: str) -> str:
        return f"{self.base_url}/organizations/{uuid}"

    def event_type_uri(self, uuid: str) -> str:
        return f"{self.base_url}/event_types/{uuid}"

    def event_uri(self, uuid: str) -> str:
        return f"{self.base_url}/scheduled_events/{uuid}"

    def invitee_uri(self, event_uuid: str, uuid: str) -> str:
        return f"{self.base_url}/scheduled_events/{event_uuid}/invitees/{uuid}"

    def subscription_uri(self, uuid: str) -> str:
        return f"{self.base_url}/webhook_subscriptions/{uuid}"

    def membership_uri(self, uuid: str) -> str:
        return f"{self.base_url}/organization_memberships/{uuid}"

    # Resources --------------------------------------------------------------------------------
    def user(self, user: User, *, with_organization: bool = True) -> dict[str, Any]:
        resource = {
            "uri": self.user_uri(user.uuid),
            "name": user.name,
            "slug": user.slug,
            "email": user.email,
            "scheduling_url": f"https://calendly.com/{user.slug}",
            "timezone": user.timezone,
            "avatar_url": user.avatar_url,
            "created_at": timestamp(user.created_at),
            "updated_at": timestamp(user.updated_at),
        }
        if with_organization:
            resource["current_organization"] = self.organization_uri(user.organization_uuid)
        return resource

    def membership(self, user: User) -> dict[str, Any]:
        return {
            "uri": self.membership_uri(user.membership_uuid),
            "role": user.role,
            # The membership embeds the user without current_organization (spec: no such field).
            "user": self.user(user, with_organization=False),
            "organization": self.organization_uri(user.organization_uuid),
            "created_at": timestamp(user.created_at),
            "updated_at": timestamp(user.updated_at),
        }

    def event_type(self, event_type: EventType, owner: User) -> dict[str, Any]:
        return {
            "uri": self.event_type_uri(event_type.uuid),
            "name": event_type.name,
            "active": event_type.active,
            "booking_method": "instant",
            "slug": event_type.slug,
            "scheduling_url": f"https://calendly.com/{owner.slug}/{event_type.slug}",
            "duration": event_type.duration,
            "kind": event_type.kind,
            "pooling_type": None,
            "type": "StandardEventType",
            "color": event_type.color,
            "created_at": timestamp(event_type.created_at),
            "updated_at": timestamp(event_type.updated_at),
            "internal_note": None,
            "description_plain": event_type.description,
            "description_html": f"<p>{event_type.description}</p>",
            "profile": {"type": "User", "name": owner.name, "owner": self.user_uri(owner.uuid)},
            "secret": event_type.secret,
            "deleted_at": None,
            "admin_managed": False,
            "kind_description": _KIND_DESCRIPTIONS[event_type.kind],
            "custom_questions": [dict(q) for q in event_type.custom_questions],
        }

    def event(self, event: ScheduledEvent, owner: User, invitees: list[Invitee]) -> dict[str, Any]:
        resource = {
            "uri": self.event_uri(event.uuid),
            "name": event.name,
            "status": event.status,
            "start_time": timestamp(event.start_time),
            "end_time": timestamp(event.end_time),
            "event_type": self.event_type_uri(event.event_type_uuid),
            "location": dict(event.location),
            "invitees_counter": {
                "total": len(invitees),
                "active": sum(1 for i in invitees if i.status == "active"),
                "limit": event.invitee_limit,
            },
            "created_at": timestamp(event.created_at),
            "updated_at": timestamp(event.updated_at),
            "event_memberships": [
                {
                    "user": self.user_uri(owner.uuid),
                    "user_email": owner.email,
                    "user_name": owner.name,
                }
            ],
            "event_guests": [
                {
                    "email": email,
                    "created_at": timestamp(event.created_at),
                    "updated_at": timestamp(event.created_at),
                }
                for email in event.guest_emails
            ],
            "calendar_event": (
                {"kind": "google", "external_id": event.calendar_external_id}
                if event.calendar_external_id
                else None
            ),
        }
        if event.cancellation:
            resource["cancellation"] = self._cancellation(event.cancellation)
        return resource

    def invitee(self, invitee: Invitee) -> dict[str, Any]:
        resource = {
            "uri": self.invitee_uri(invitee.event_uuid, invitee.uuid),
            "email": invitee.email,
            "first_name": invitee.first_name,
            "last_name": invitee.last_name,
            "name": invitee.name,
            "status": invitee.status,
            "questions_and_answers": [dict(qa) for qa in invitee.questions_and_answers],
            "timezone": invitee.timezone,
            "event": self.event_uri(invitee.event_uuid),
            "created_at": timestamp(invitee.created_at),
            "updated_at": timestamp(invitee.updated_at),
            "tracking": dict(_NULL_TRACKING),
            "text_reminder_number": invitee.text_reminder_number,
            "rescheduled": False,
            "old_invitee": None,
            "new_invitee": None,
            "cancel_url": f"https://calendly.com/cancellations/{invitee.uuid}",
            "reschedule_url": f"https://calendly.com/reschedulings/{invitee.uuid}",
            "routing_form_submission": None,
            "payment": None,
            "no_show": (
                {
                    "uri": f"{self.base_url}/invitee_no_shows/{invitee.no_show_uuid}",
                    "created_at": timestamp(invitee.no_show_created_at),
                }
                if invitee.no_show_uuid
                else None
            ),
            "reconfirmation": None,
        }
        if invitee.cancellation:
            resource["cancellation"] = self._cancellation(invitee.cancellation)
        resource.update(invitee.extra)
        return resource

    def subscription(self, sub: Subscription) -> dict[str, Any]:
        return {
            "uri": self.subscription_uri(sub.uuid),
            "callback_url": sub.callback_url,
            "created_at": timestamp(sub.created_at),
            "updated_at": timestamp(sub.updated_at),
            "retry_started_at": timestamp(sub.retry_started_at),
            "state": sub.state,
            "events": list(sub.events),
            "scope": sub.scope,
            "organization": self.organization_uri(sub.organization_uuid),
            "user": self.user_uri(sub.user_uuid) if sub.user_uuid else None,
            "creator": self.user_uri(sub.creator_uuid),
        }

    def routing_form_submission(self, submission: RoutingFormSubmission) -> dict[str, Any]:
        resource = {
            "uri": f"{self.base_url}/routing_form_submissions/{submission.uuid}",
            "routing_form": f"{self.base_url}/routing_forms/{submission.routing_form_uuid}",
            "questions_and_answers": [dict(qa) for qa in submission.questions_and_answers],
            "tracking": dict(_NULL_TRACKING),
            "result": {
                "type": "event_type",
                "value": self.event_type_uri(submission.event_type_uuid),
            },
            "submitter": None,
            "submitter_type": None,
            "created_at": timestamp(submission.created_at),
            "updated_at": timestamp(submission.updated_at),
        }
        resource.update(submission.extra)
        return resource

    @staticmethod
    def _cancellation(cancellation: dict[str, Any]) -> dict[str, Any]:
        return {
            key: timestamp(value) if isinstance(value, datetime) else value
            for key, value in cancellation.items()
        }
