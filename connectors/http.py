"""HTTP execution shared by every connector: one session per credential use, timeouts on every
call, retries with backoff, no credential ever leaving for another host, typed errors.

``HttpClient`` is opened by ``Connector.session()`` for one credential use (validating it,
running one action and its resource functions, one webhook operation) and closed after it, so
cookies or connection state never outlive that use or cross to another tenant.

Retry policy, per request:

* 429 is always retried (the request was not processed): the wait is the server's
  ``Retry-After`` or ``X-RateLimit-Reset``, else exponential backoff with full jitter;
* 5xx, a reset connection and a cut-off answer are retried only when repeating the request
  is safe (an idempotent method, or a request carrying an idempotency key);
* a connection that could not be opened (refused, DNS, connect timeout) is retried for every
  method: nothing was sent;
* other 4xx answers are never retried.

A server asking for a longer wait than ``Runtime.max_retry_wait`` gets no retry: the typed
error carries ``retry_after`` so a scheduler (Celery) can come back later instead of holding a
worker. Redirects are followed only to the same origin, for GET/HEAD, and never for
destinations under the network policy; a redirect elsewhere raises ``UnsafeDestination`` so the
Authorization header is never sent to another host.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from . import errors
from .netguard import GuardedAdapter, NetworkPolicy
from .ratelimit import RateLimiter, acquire
from .results import RequestSummary
from .runtime import Runtime
from .secrets import Scrubber

logger = logging.getLogger("connectors.http")

_MAX_REDIRECTS = 5
_MAX_MESSAGE = 400
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FOLLOWABLE = frozenset({"GET", "HEAD"})
_HEADER_VALUE = re.compile(r"^[^\x00-\x1f\x7f]*$")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A successful answer: status, parsed body (None when empty) and headers."""

    status: int
    data: Any
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Messages:
    """How errors name the service and the credential in the messages a user reads."""

    service: str
    unauthorized: str


def _seconds(value: float) -> str:
    return f"{value:g}"


def retry_after(
    headers: Mapping[str, str], *, rate_limited: bool = False, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After`` (seconds or an HTTP date), else,
    for a 429, ``X-RateLimit-Reset`` (seconds until the window resets, or a Unix time).

    APIs such as Calendly send X-RateLimit-* on every answer, so the reset only means
    "wait" when the request was refused for the rate limit.
    """
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                moment = None
            if moment is not None:
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                current = datetime.now(UTC).timestamp() if now is None else now
                return max(0.0, moment.timestamp() - current)
    reset = headers.get("X-RateLimit-Reset") if rate_limited else None
    if reset:
        try:
            seconds = float(reset.strip())
        except ValueError:
            return None
        if seconds > 1_000_000_000:  # a Unix timestamp, as some APIs send
            current = time.time() if now is None else now
            seconds -= current
        return max(0.0, seconds)
    return None


class _Shared:
    """Marks a transport shared by every session of the process: a session's ``close()``
    must not close the connections other sessions are using."""

    def close(self) -> None:
        return None


class SharedAdapter(_Shared, HTTPAdapter):
    """A process-wide connection pool for destinations outside the network policy."""


class SharedGuardedAdapter(_Shared, GuardedAdapter):
    """A process-wide connection pool whose connections obey one network policy."""


SHARED_POOL_SIZE = 64
_transports: dict[NetworkPolicy | None, HTTPAdapter] = {}
_transports_lock = threading.Lock()
# A forked worker (Celery prefork) must not use sockets its parent opened.
os.register_at_fork(after_in_child=_transports.clear)


def transport(policy: NetworkPolicy | None, *, shared: bool) -> HTTPAdapter:
    """The connection pool a session mounts.

    Shared pools let one credential use reuse the TCP/TLS connection a previous use opened
    (a TLS handshake is most of a short API call). Connections carry no identity: the
    Authorization header is set per request and cookies live in the per-use session. Pools
    are keyed by network policy, since a connection is checked against the policy only when
    it is opened.
    """
    if not shared:
        if policy is not None:
            return GuardedAdapter(policy, pool_connections=1, pool_maxsize=4)
        return HTTPAdapter(pool_connections=1, pool_maxsize=4)
    with _transports_lock:
        adapter = _transports.get(policy)
        if adapter is None:
            # Up to SHARED_POOL_SIZE idle connections kept per host: as many as a worker's run
            # threads may have in flight to one destination, or each call past the size
            # would open a connection and throw it away.
            if policy is not None:
                adapter = SharedGuardedAdapter(
                    policy, pool_connections=16, pool_maxsize=SHARED_POOL_SIZE
                )
            else:
                adapter = SharedAdapter(pool_connections=16, pool_maxsize=SHARED_POOL_SIZE)
            _transports[policy] = adapter
        return adapter


class HttpClient:
    """Sends one credential's requests; a context manager around one ``requests.Session``.

    ``summaries`` collects a ``RequestSummary`` per request sent (successful or not), which
    ``Connector.run_action`` returns and attaches to errors.
    """

    def __init__(
        self,
        *,
        runtime: Runtime,
        headers: Mapping[str, str],
        messages: Messages,
        scrubber: Scrubber,
        limiter: RateLimiter,
        limiter_key: str,
        policy: NetworkPolicy | None = None,
        follow_redirects: bool = True,
        json_only: bool = True,
    ) -> None:
        self.runtime = runtime
        self.messages = messages
        self.scrubber = scrubber
        self.limiter = limiter
        self.limiter_key = limiter_key
        self.policy = policy
        self.follow_redirects = follow_redirects and policy is None
        self.json_only = json_only
        self.summaries: list[RequestSummary] = []
        self.timeout = (runtime.connect_timeout, runtime.read_timeout)
        session = requests.Session()
        session.trust_env = runtime.trust_env and policy is None
        session.headers.clear()
        session.headers.update(
            {
                "User-Agent": runtime.user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            }
        )
        session.headers.update(headers)
        adapter = transport(policy, shared=runtime.reuse_connections)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self.session = session

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # The request loop -------------------------------------------------------------------------
    def send(
        self,
        method: str,
        url: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        logged_query: frozenset[str] = frozenset(),
    ) -> HttpResponse:
        """Send one request (with retries); return the answer or raise a typed error."""
        if self.policy is not None:
            self.policy.check_url(url, label=f"The {self.messages.service} destination")
        data = None
        extra = dict(headers or {})
        if body is not None:
            try:
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            except (TypeError, ValueError) as error:
                raise errors.FilterError(
                    f"The document cannot be sent as JSON ({type(error).__name__}: it holds "
                    "something other than objects, lists, text, numbers, booleans and null)."
                ) from None
            extra["Content-Type"] = "application/json"
        for name, value in extra.items():
            if not _HEADER_VALUE.match(value):
                raise errors.FilterError(f"The {name} header value contains control characters.")
        progress = _Progress(method, url, list(query), logged_query, time.perf_counter())
        failures = 0
        while True:
            progress.attempts += 1
            try:
                acquire(self.limiter, self.limiter_key)
                response, raw = self._exchange(method, progress.url, progress.params, data, extra)
            except errors.ConnectorError as error:
                if not self._may_retry(error, idempotent, failures):
                    self._fail(progress, error, None)
                failures += 1
                self._wait(progress, self._backoff(failures), f"failed ({error})")
                continue

            status = response.status_code
            if status in _REDIRECTS and response.headers.get("Location"):
                target = urljoin(progress.url, response.headers["Location"])
                error = self._redirect_error(
                    method, progress.url, target, status, progress.attempts
                )
                if error is not None:
                    self._fail(progress, error, status)
                progress.url, progress.params = target, []
                continue
            if 200 <= status < 300:
                try:
                    body_data = self._parse(response, raw)
                except errors.ConnectorError as error:
                    self._fail(progress, error, status)
                self._record(progress, status)
                return HttpResponse(status, body_data, response.headers)

            error = self._status_error(method, progress.url, response, raw, progress.attempts)
            can_retry = status == 429 or (status >= 500 and idempotent)
            wait = retry_after(response.headers, rate_limited=status == 429)
            if wait is not None and wait > self.runtime.max_retry_wait:
                can_retry = False  # come back later rather than hold a worker for that long
            if not can_retry or failures >= self.runtime.max_retries:
                self._fail(progress, error, status)
            failures += 1
            self._wait(
                progress, self._backoff(failures) if wait is None else wait, f"answered {status}"
            )

    def _exchange(
        self, method: str, url: str, params: list, data: bytes | None, headers: dict
    ) -> tuple[requests.Response, bytes]:
        """One HTTP exchange; transport problems become typed errors."""
        service = self.messages.service
        try:
            response = self.session.request(
                method,
                url,
                params=params or None,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.ConnectTimeout as error:
            raise _connect_phase(
                errors.Timeout(
                    f"Could not reach {service}: timed out after "
                    f"{_seconds(self.runtime.connect_timeout)} s"
                )
            ) from error
        except requests.exceptions.ReadTimeout as error:
            raise self._read_timeout() from error
        except requests.exceptions.ConnectionError as error:
            raise _transport_error(service, error) from error
        except requests.exceptions.InvalidURL as error:
            raise errors.UnsafeDestination(f"The {service} URL is not valid.") from error
        except requests.exceptions.RequestException as error:
            # Anything else requests refuses (its messages may quote header values: not shown).
            raise errors.TransportError(
                f"The request to {service} could not be sent ({type(error).__name__}).",
                retryable=False,
            ) from None
        try:
            raw = (
                b""
                if method == "HEAD" or response.status_code in (204, 304)
                else self._read(response)
            )
        finally:
            response.close()
        return response, raw

    def _read_timeout(self) -> errors.Timeout:
        seconds = _seconds(self.runtime.read_timeout)
        return errors.Timeout(
            f"Could not reach {self.messages.service}: timed out after {seconds} s"
        )

    def _read(self, response: requests.Response) -> bytes:
        limit = self.runtime.max_response_bytes
        service = self.messages.service
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise errors.InvalidResponse(
                f"{service}'s answer is too large ({int(declared)} bytes; the limit is {limit})."
            )
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > limit:
                    raise errors.InvalidResponse(
                        f"{service}'s answer is too large (over {limit} bytes)."
                    )
                chunks.append(chunk)
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as error:
            raise errors.InvalidResponse(
                f"{service}'s answer was cut off before it was complete.", retryable=True
            ) from error
        except requests.exceptions.ConnectionError as error:
            if error.args and isinstance(error.args[0], ReadTimeoutError):
                raise self._read_timeout() from error
            raise errors.InvalidResponse(
                f"{service}'s answer was cut off before it was complete.", retryable=True
            ) from error
        return b"".join(chunks)

    # Decisions --------------------------------------------------------------------------------
    def _may_retry(self, error: errors.ConnectorError, idempotent: bool, failures: int) -> bool:
        if failures >= self.runtime.max_retries or not error.retryable:
            return False
        if isinstance(error, errors.RateLimited):
            return False  # our own budget said no, after waiting as long as it allows
        # Nothing reached the server when connecting failed: repeating is safe for any method.
        return idempotent or getattr(error, "connect_phase", False)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.runtime.backoff_cap, self.runtime.backoff_base * 2 ** (failures - 1))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not cryptography)

    def _wait(self, progress: _Progress, seconds: float, what: str) -> None:
        logger.info(
            "%s %s %s; retrying in %.2f s (attempt %d of %d)",
            progress.method,
            _summary_url(progress.url, self.scrubber),
            what,
            seconds,
            progress.attempts + 1,
            self.runtime.max_retries + 1,
        )
        if seconds > 0:
            self.runtime.sleep(seconds)
        progress.waited += seconds

    def _redirect_error(
        self, method: str, current: str, target: str, status: int, attempts: int
    ) -> errors.ConnectorError | None:
        service = self.messages.service
        here, there = urlsplit(current), urlsplit(target)
        same_origin = (here.scheme, here.hostname, here.port) == (
            there.scheme,
            there.hostname,
            there.port,
        )
        if not same_origin:
            host = there.hostname or "an unknown host"
            return errors.UnsafeDestination(
                f"{service} redirected the request to another host ({host}); it was not "
                f"followed, so the credential was not sent there.",
                status=status,
            )
        if self.follow_redirects and method in _FOLLOWABLE and attempts <= _MAX_REDIRECTS:
            return None
        return errors.ApiError(
            f"{service} answered {status} with a redirect to {there.path or '/'}; redirects are "
            "not followed for this request.",
            status=status,
            retryable=False,
        )

    def _status_error(
        self, method: str, url: str, response: requests.Response, raw: bytes, attempts: int
    ) -> errors.ApiError:
        service = self.messages.service
        status = response.status_code
        title, api_message, details = _error_body(raw)
        title = self.scrubber.text(title) if title else None
        api_message = self.scrubber.text(api_message) if api_message else None
        details = self.scrubber.data(details)
        wait = retry_after(response.headers, rate_limited=status == 429)
        explained = _explain(title, api_message, details)
        reason = title or response.reason or "error"
        if status == 401:
            return errors.AuthenticationFailed(
                self.messages.unauthorized, status=401, title=title, api_message=api_message,
                details=details,
            )  # fmt: skip
        if status == 403:
            cls, message = errors.PermissionDenied, f"{service} denied permission (403)"
        elif status == 404:
            where = urlsplit(url).path or "/"
            cls, message = (
                errors.NotFound,
                f"{service} has no such resource: {method} {where} (404)",
            )
        elif status == 409:
            cls, message = errors.AlreadyExists, f"{service} says it already exists (409)"
        elif status == 429:
            cls = errors.RateLimited
            later = f"; retry in {wait:.0f} s" if wait is not None else ""
            message = f"{service}'s rate limit was reached (429){later}"
        elif status >= 500:
            cls, message = errors.ApiError, f"{service} failed with {status} {reason}"
        else:
            cls, message = errors.ApiError, f"{service} rejected the request ({status} {reason})"
        if explained:
            message = f"{message}: {explained}"
        if attempts > 1:
            message = f"{message} (after {attempts} attempts)"
        if not message.endswith("."):
            message += "."
        return cls(
            self.scrubber.text(message), status=status, title=title, api_message=api_message,
            details=details, retry_after=wait,
        )  # fmt: skip

    def _parse(self, response: requests.Response, raw: bytes) -> Any:
        if not raw.strip():
            if self.json_only and response.status_code != 204 and response.request.method != "HEAD":
                raise self._invalid(response, "an empty answer")
            return None
        content_type = response.headers.get("Content-Type", "")
        try:
            data = json.loads(raw)
        except ValueError:
            if self.json_only:
                raise self._invalid(
                    response, f"an answer that is not JSON ({content_type or 'no type'})"
                ) from None
            data = raw.decode(response.encoding or "utf-8", "replace")
        if self.scrubber and self.scrubber.found_in(raw):
            data = self.scrubber.data(data)
        return data

    def _invalid(self, response: requests.Response, what: str) -> errors.InvalidResponse:
        return errors.InvalidResponse(
            f"{self.messages.service} sent {what} with status {response.status_code}.",
            status=response.status_code,
        )

    # Records ----------------------------------------------------------------------------------
    def _fail(
        self, progress: _Progress, error: errors.ConnectorError, status: int | None
    ) -> NoReturn:
        self._record(progress, status, error)
        error.requests = tuple(self.summaries)
        raise error

    def _record(
        self,
        progress: _Progress,
        status: int | None,
        error: errors.ConnectorError | None = None,
    ) -> None:
        logged = progress.logged_query
        query = tuple(
            (name, self.scrubber.text(value) if name in logged else "***")
            for name, value in progress.params
        )
        summary = RequestSummary(
            method=progress.method,
            url=_summary_url(progress.url, self.scrubber),
            status=status,
            elapsed_ms=(time.perf_counter() - progress.started) * 1000.0,
            attempts=progress.attempts,
            query=query,
            waited_s=progress.waited,
            error=type(error).__name__ if error is not None else None,
        )
        self.summaries.append(summary)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.1f ms (%d attempt(s))",
                summary.method,
                summary.url,
                status if status is not None else summary.error,
                summary.elapsed_ms,
                summary.attempts,
            )


@dataclass(slots=True)
class _Progress:
    """One request's state across its attempts and redirects."""

    method: str
    url: str
    params: list[tuple[str, str]]
    logged_query: frozenset[str]
    started: float
    attempts: int = 0
    waited: float = 0.0


def _summary_url(url: str, scrubber: Scrubber) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return scrubber.text(f"{parts.scheme}://{host}{parts.path}")


def _connect_phase(error: errors.ConnectorError) -> errors.ConnectorError:
    # Nothing reached the server: repeating is safe whatever the method.
    error.connect_phase = True  # type: ignore[attr-defined]
    return error


def _transport_error(
    service: str, error: requests.exceptions.ConnectionError
) -> errors.ConnectorError:
    text = repr(error).lower()
    if "nameresolution" in text or "name or service not known" in text or "getaddrinfo" in text:
        return _connect_phase(
            errors.TransportError(f"Could not reach {service}: the host name does not resolve.")
        )
    if "refused" in text:
        return _connect_phase(
            errors.TransportError(f"Could not reach {service}: the connection was refused.")
        )
    if "newconnectionerror" in text or "failed to establish" in text:
        return _connect_phase(
            errors.TransportError(f"Could not reach {service}: no connection could be made.")
        )
    if "ssl" in text or "certificate" in text:
        return errors.TransportError(
            f"Could not reach {service}: the TLS handshake failed (certificate or protocol).",
            retryable=False,
        )
    return errors.TransportError(f"Could not reach {service}: the connection was closed or reset.")


def _error_body(raw: bytes) -> tuple[str | None, str | None, list[Any]]:
    """(title, message, details) of an error answer in the common ``ErrorResponse`` shape."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None, None, []
    if not isinstance(body, dict):
        return None, None, []
    title = body.get("title") if isinstance(body.get("title"), str) else None
    message = body.get("message")
    if not isinstance(message, str):
        message = next((body[k] for k in ("error", "err") if isinstance(body.get(k), str)), None)
    details = body.get("details")
    if not isinstance(details, list):
        details = body.get("errors")  # GitHub's shape: [{"resource", "field", "message"}]
    return title, message, details if isinstance(details, list) else []


def _explain(title: str | None, message: str | None, details: list[Any]) -> str:
    parts = []
    if message:
        parts.append(message.rstrip("."))
    for detail in details[:5]:
        if isinstance(detail, dict):
            name, text = detail.get("parameter") or detail.get("field"), detail.get("message")
            if text:
                parts.append(f"{name}: {text}" if name else str(text))
    text = "; ".join(parts)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
