"""JSON Schemas of Calendly's resources, after the OpenAPI document (components/schemas).

They describe what actions return so the portal can offer fields in its mapping editor; they
list the properties users map most, are permissive about the rest (Calendly adds fields), and
are not used to reject answers.
"""

from __future__ import annotations

from typing import Any

URI = {"type": "string", "format": "uri"}
NULLABLE_URI = {"type": ["string", "null"], "format": "uri"}
TIME = {"type": "string", "format": "date-time"}
TEXT = {"type": "string"}
NULLABLE_TEXT = {"type": ["string", "null"]}

USER: dict[str, Any] = {
    "title": "User",
    "type": "object",
    "properties": {
        "uri": URI,
        "name": TEXT,
        "slug": TEXT,
        "email": {"type": "string", "format": "email"},
        "scheduling_url": URI,
        "timezone": TEXT,
        "avatar_url": NULLABLE_URI,
        "created_at": TIME,
        "updated_at": TIME,
        "current_organization": URI,
    },
    "required": ["uri", "name", "email", "current_organization"],
}

EVENT_TYPE: dict[str, Any] = {
    "title": "Event type",
    "type": "object",
    "properties": {
        "uri": URI,
        "name": NULLABLE_TEXT,
        "active": {"type": "boolean"},
        "slug": NULLABLE_TEXT,
        "scheduling_url": URI,
        "duration": {"type": "number"},
        "kind": {"type": "string", "enum": ["solo", "group"]},
        "type": TEXT,
        "color": TEXT,
        "description_plain": NULLABLE_TEXT,
        "profile": {"type": ["object", "null"]},
        "secret": {"type": "boolean"},
        "created_at": TIME,
        "updated_at": TIME,
    },
    "required": ["uri", "active"],
}

SCHEDULED_EVENT: dict[str, Any] = {
    "title": "Scheduled event",
    "type": "object",
    "properties": {
        "uri": URI,
        "name": NULLABLE_TEXT,
        "status": {"type": "string", "enum": ["active", "canceled"]},
        "start_time": TIME,
        "end_time": TIME,
        "event_type": URI,
        "location": {"type": ["object", "null"]},
        "invitees_counter": {
            "type": "object",
            "properties": {
                "total": {"type": "number"},
                "active": {"type": "number"},
                "limit": {"type": "number"},
            },
        },
        "created_at": TIME,
        "updated_at": TIME,
        "event_memberships": {"type": "array", "items": {"type": "object"}},
        "event_guests": {"type": "array", "items": {"type": "object"}},
        "cancellation": {"type": ["object", "null"]},
    },
    "required": ["uri", "status", "start_time", "end_time"],
}

INVITEE: dict[str, Any] = {
    "title": "Invitee",
    "type": "object",
    "properties": {
        "uri": URI,
        "email": {"type": "string", "format": "email"},
        "name": TEXT,
        "first_name": NULLABLE_TEXT,
        "last_name": NULLABLE_TEXT,
        "status": {"type": "string", "enum": ["active", "canceled"]},
        "timezone": NULLABLE_TEXT,
        "event": URI,
        "questions_and_answers": {"type": "array", "items": {"type": "object"}},
        "text_reminder_number": NULLABLE_TEXT,
        "rescheduled": {"type": "boolean"},
        "cancel_url": URI,
        "reschedule_url": URI,
        "cancellation": {"type": ["object", "null"]},
        "created_at": TIME,
        "updated_at": TIME,
    },
    "required": ["uri", "email", "status", "event"],
}

WEBHOOK_SUBSCRIPTION: dict[str, Any] = {
    "title": "Webhook subscription",
    "type": "object",
    "properties": {
        "uri": URI,
        "callback_url": URI,
        "created_at": TIME,
        "updated_at": TIME,
        "retry_started_at": {"type": ["string", "null"], "format": "date-time"},
        "state": {"type": "string", "enum": ["active", "disabled"]},
        "events": {"type": "array", "items": TEXT},
        "scope": {"type": "string", "enum": ["user", "organization"]},
        "organization": URI,
        "user": NULLABLE_URI,
        "creator": NULLABLE_URI,
    },
    "required": ["uri", "callback_url", "state", "events", "scope", "organization"],
}

PAGINATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "number"},
        "next_page": NULLABLE_URI,
        "previous_page": NULLABLE_URI,
        "next_page_token": NULLABLE_TEXT,
        "previous_page_token": NULLABLE_TEXT,
    },
}


def resource(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"resource": <schema>}``: the answer for one resource."""
    return {"type": "object", "properties": {"resource": schema}, "required": ["resource"]}


def collection(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"collection": [<schema>], "pagination": {...}}``: one page of a list."""
    return {
        "type": "object",
        "properties": {
            "collection": {"type": "array", "items": schema},
            "pagination": PAGINATION,
        },
        "required": ["collection", "pagination"],
    }
