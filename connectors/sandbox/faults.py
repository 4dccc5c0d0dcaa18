"""Injected failures: the misbehaviour a connector must survive, on demand.

A fault matches the next API requests whose path starts with ``path_prefix`` (and whose method
matches, if given) and is used up after ``times`` of them. Options are checked when the fault is
injected, so a typo fails the test that made it instead of silently injecting nothing.

Kinds and their options:

``status``      answer ``status`` (default 500) with the application's error body instead of
                handling the request; ``retry_after`` adds a Retry-After header; ``body`` (a
                dict) replaces the body.
``rate_limit``  answer 429 with X-RateLimit-* headers (remaining 0), ``reset`` seconds
                (default 60) in X-RateLimit-Reset and Retry-After.
``stall``       wait ``seconds`` (default 30) before handling the request normally, to trip a
                client's read timeout; stopping the sandbox cuts the wait short.
``non_json``    answer ``status`` (default 200) with an HTML page, as a proxy or CDN might.
``truncated``   handle the request normally, then declare the full Content-Length but send only
                half of the body and close the connection.
``redirect``    answer ``status`` (default 302) with ``Location: <location>`` (required), e.g. a
                different host that must not receive the bearer token.
``disconnect``  close the connection without answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_OPTIONS: dict[str, dict[str, Any]] = {
    "status": {"status": 500, "retry_after": None, "body": None},
    "rate_limit": {"reset": 60},
    "stall": {"seconds": 30.0},
    "non_json": {"status": 200},
    "truncated": {},
    "redirect": {"status": 302, "location": None},
    "disconnect": {},
}
KINDS = tuple(_OPTIONS)
# Kinds after which the request is still handled (and its side effects happen).
PASS_THROUGH = ("stall", "truncated")


@dataclass
class Fault:
    """A pending fault and how many more requests it will affect."""

    path_prefix: str
    kind: str
    remaining: int
    options: dict[str, Any] = field(default_factory=dict)
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method == method)

    def describe(self) -> dict[str, Any]:
        return {
            "path_prefix": self.path_prefix,
            "kind": self.kind,
            "remaining": self.remaining,
            "method": self.method,
            **self.options,
        }


def make_fault(
    path_prefix: str, kind: str, times: int = 1, method: str | None = None, **options: Any
) -> Fault:
    """Validate a fault request and fill in defaults; raises ValueError on any mistake."""
    if kind not in _OPTIONS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not path_prefix.startswith("/"):
        raise ValueError("path_prefix must start with '/' (e.g. '/scheduled_events')")
    if not isinstance(times, int) or times < 1:
        raise ValueError("times must be a positive integer")
    unknown = set(options) - set(_OPTIONS[kind])
    if unknown:
        raise ValueError(f"fault {kind!r} takes no option(s) {', '.join(sorted(unknown))}")
    merged = {**_OPTIONS[kind], **options}
    if kind == "redirect" and not merged["location"]:
        raise ValueError("a redirect fault needs location=<absolute URL>")
    if kind in ("status", "non_json", "redirect") and not 100 <= int(merged["status"]) <= 599:
        raise ValueError("status must be an HTTP status code")
    if kind == "stall" and float(merged["seconds"]) < 0:
        raise ValueError("seconds must not be negative")
    return Fault(path_prefix, kind, times, merged, method.upper() if method else None)


def take(faults: list[Fault], method: str, path: str) -> Fault | None:
    """Use up one application of the oldest fault in ``faults`` that matches, if any (the
    caller holds the lock that guards the list)."""
    for fault in faults:
        if fault.matches(method, path):
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            return fault
    return None
