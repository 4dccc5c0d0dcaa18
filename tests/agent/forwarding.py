"""The flow of the agent's fault runs, shared by tests/agent/test_faults.py and
benchmarks/agent_faults.py (plain data: no Django here)."""

from __future__ import annotations


def forwarding_definition() -> dict:
    """Map the booking, then POST it with the agent's REST connection 'dest'; the trigger
    names the agent's Calendly connection 'main'."""
    return {
        "trigger": {"type": "webhook", "application": "calendly", "credential": "main",
                    "events": ["invitee.created"], "options": {"scope": "organization"}},
        "steps": [
            {"name": "document", "type": "map",
             "mapping": {"email": "{{ trigger.payload.email }}"}},
            {"name": "forward", "type": "action", "application": "rest", "credential": "dest",
             "action": "post_json", "filters": [["path", "/bookings"]],
             "document": "{{ steps.document }}"},
        ],
    }  # fmt: skip
