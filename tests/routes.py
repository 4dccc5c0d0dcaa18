"""Walks the URLconf so tests can be generated for every route."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name"
    pattern: str
    kwargs: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")


def _kwarg_names(pattern) -> list[str]:
    converters = getattr(pattern, "converters", None)
    if converters:
        return list(converters)
    regex = getattr(pattern, "regex", None)
    return list(regex.groupindex) if regex is not None else []


def iter_routes(resolver=None, prefix: str = "", namespace: str = "", kwargs=()):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        names = (*kwargs, *_kwarg_names(entry.pattern))
        text = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from iter_routes(entry, text, ns, names)
        elif isinstance(entry, URLPattern) and entry.name:
            full = f"{namespace}:{entry.name}" if namespace else entry.name
            yield Route(full, text, tuple(dict.fromkeys(names)))


def tenant_routes() -> list[Route]:
    """Every named route whose URL carries an organization slug."""
    return sorted({route for route in iter_routes() if "org" in route.kwargs}, key=lambda r: r.name)
