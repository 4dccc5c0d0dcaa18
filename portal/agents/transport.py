"""The agent transport, ``/api/v1/agent/…``: the agent calls the portal, never the other way.

Authenticated by the agent's secret (``Authorization: Agent cpa_…``); a revoked or unknown
secret is 401 at once. Bodies are JSON; errors use the API's common format. Every run or
job an agent names is looked up in its organization and group only: anything else is 404.
The wire protocol is described in the README ("Agents in the portal") and kept in step with
the agent program. These endpoints are for the agent program, not for people, so they are
left out of the OpenAPI schema.

The long-poll (``GET jobs?wait=25``) holds a request thread up to 25 seconds: gunicorn runs
with threads (``--threads 8``), and ``PORTAL_AGENT_LONG_POLLS`` (below the thread count)
caps how many a process holds at once, so the portal's own traffic always finds a thread;
beyond the cap a poll answers after a one-second look instead of waiting.
"""

from __future__ import annotations

import socket
import threading

from django.conf import settings
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from portal.agents import jobs, services
from portal.agents.models import Agent, AgentJob
from portal.agents.selectors import group_applications
from portal.processflows.models import Run

NOT_FOUND = "Not found."


class AgentSecretAuthentication(BaseAuthentication):
    """``Authorization: Agent <secret>``: the agent itself (``request.auth``)."""

    keyword = b"agent"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the agent's secret as 'Authorization: Agent <secret>'."
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed agent secret.") from None
        agent = services.authenticate(raw)
        if agent is None:
            raise exceptions.AuthenticationFailed(
                "This agent is unknown or was revoked; register it again with a new key."
            )
        return _AgentUser(agent), agent

    def authenticate_header(self, request) -> str:
        return 'Agent realm="agent"'


class _AgentUser:
    """What DRF calls the user of an agent's request: no person, no membership."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    pk = None

    def __init__(self, agent: Agent):
        self.agent = agent

    def __str__(self) -> str:
        return f"agent {self.agent.pk}"


class IsAgent(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Agent)


class AgentRateThrottle(SimpleRateThrottle):
    """Per agent, generous (a busy agent reports several steps a second): it only stops an
    agent that went into a loop from flooding the portal."""

    scope = "agent"

    def get_rate(self):
        return settings.PORTAL_AGENT_RATE

    def get_cache_key(self, request, view):
        agent = request.auth if isinstance(request.auth, Agent) else None
        if agent is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": agent.pk}


class AgentView(APIView):
    authentication_classes = [AgentSecretAuthentication]
    permission_classes = [IsAgent]
    throttle_classes = [AgentRateThrottle]

    @property
    def agent(self) -> Agent:
        return self.request.auth


class LeaseConflict(exceptions.APIException):
    """409: the lease the agent sent is no longer the run's; it drops the run."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = jobs.LEASE_LOST
    default_code = "conflict"


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError("The body is a JSON object.")
    return request.data


def _invalid(error: ValueError | ValidationError):
    if isinstance(error, ValidationError):
        return error
    return exceptions.ValidationError(str(error))


@extend_schema(exclude=True)
class RegisterView(APIView):
    """``POST register``: pair an installed agent through its one-time key."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    def post(self, request):
        body = _body(request)
        registered = services.register(
            key=body.get("key"),
            name=body.get("name", ""),
            hostname=body.get("hostname", ""),
            version=body.get("version", ""),
        )
        agent = registered.agent
        return Response(
            {
                "agent": {
                    "id": agent.pk,
                    "name": agent.name,
                    "group": {"id": agent.group_id, "name": agent.group.name},
                    "organization": {
                        "slug": agent.organization.slug,
                        "name": agent.organization.name,
                    },
                },
                "secret": registered.secret,
            },
            status=status.HTTP_201_CREATED,
        )


@extend_schema(exclude=True)
class HeartbeatView(AgentView):
    """``POST heartbeat``: alive, its version and configured applications; answers the
    applications its group's processflows use (for the agent's Settings panel)."""

    def post(self, request):
        body = _body(request)
        services.heartbeat(
            self.agent, version=body.get("version"), applications=body.get("applications")
        )
        return Response(
            {
                "applications": group_applications(self.agent.group),
                "poll_seconds": jobs.MAX_WAIT_SECONDS,
            }
        )


_long_polls = threading.BoundedSemaphore(settings.PORTAL_AGENT_LONG_POLLS)


def _hung_up(request):
    """A check whether the client of ``request`` closed its connection (an agent stopped
    or killed while its long-poll is held), from a peek at gunicorn's socket: the end of
    the stream, or a reset. Served some other way (no socket to look at, or TLS in this
    process), the client is taken to be there."""
    sock = request.META.get("gunicorn.socket")

    def gone() -> bool:
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError, ValueError):
            return False  # nothing to read yet: still connected (ValueError: a TLS socket)
        except OSError:
            return True  # reset or closed

    return gone


@extend_schema(exclude=True)
class JobsView(AgentView):
    """``GET jobs?wait=25``: work leased to this agent, as soon as there is some."""

    def get(self, request):
        raw = request.query_params.get("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            raise exceptions.ValidationError({"wait": ["Seconds to wait, 0 to 25."]}) from None
        if not 0 <= wait <= 3600:  # also refuses nan and inf
            raise exceptions.ValidationError({"wait": ["Seconds to wait, 0 to 25."]})
        raw_limit = request.query_params.get("limit", str(jobs.MAX_JOBS))
        if not raw_limit.isascii() or not raw_limit.isdigit():
            raise exceptions.ValidationError({"limit": ["The agent's free slots, 0 to 10."]})
        limit = min(int(raw_limit), jobs.MAX_JOBS)
        if limit == 0:
            return Response({"jobs": []})  # no room on the agent: nothing to lease
        gone = _hung_up(request)
        if _long_polls.acquire(blocking=False):
            try:
                found = jobs.long_poll(self.agent, wait=wait, limit=limit, gone=gone)
            finally:
                _long_polls.release()
        else:
            # This process holds as many waiting polls as it may: look briefly, don't hold.
            found = jobs.long_poll(self.agent, wait=min(wait, 1.0), limit=limit, gone=gone)
        return Response({"jobs": found})


def _run_or_404(func):
    def wrapper(self, request, run_id: int):
        try:
            return func(self, request, run_id, _body(request))
        except Run.DoesNotExist:
            raise exceptions.NotFound(NOT_FOUND) from None
        except jobs.LeaseLost:
            raise LeaseConflict() from None
        except (ValueError, ValidationError) as error:
            raise _invalid(error) from None

    return wrapper


@extend_schema(exclude=True)
class RunReportView(AgentView):
    """``POST runs/<id>/report``: step records (already redacted by the agent's engine)
    and, once the run is done, its outcome, which the portal concludes as for a Cloud run
    (retries, alerts). A whole run is usually one report: ``{"lease", "steps": [...],
    "finish": {"status", "output", "error", "retryable", "retry_after"}}``."""

    @_run_or_404
    def post(self, request, run_id: int, body: dict):
        status_now = jobs.report_run(
            self.agent,
            run_id,
            lease=body.get("lease"),
            steps=body.get("steps", []),
            finish=body.get("finish"),
        )
        return Response({"status": status_now})


@extend_schema(exclude=True)
class RunLeaseView(AgentView):
    """``POST runs/<id>/lease``: renew the lease while the run goes on."""

    @_run_or_404
    def post(self, request, run_id: int, body: dict):
        expires = jobs.renew_lease(self.agent, run_id, lease=body.get("lease"))
        return Response({"lease_expires_at": expires})


@extend_schema(exclude=True)
class JobResultView(AgentView):
    """``POST jobs/<id>/result``: a subscribe, unsubscribe or poll job's result (once)."""

    def post(self, request, job_id: str):
        try:
            applied = jobs.job_result(self.agent, job_id, _body(request))
        except AgentJob.DoesNotExist:
            raise exceptions.NotFound(NOT_FOUND) from None
        except (ValueError, ValidationError) as error:
            raise _invalid(error) from None
        return Response({"ok": True, "applied": applied})
