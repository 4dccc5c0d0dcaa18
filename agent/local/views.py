"""The local UI: the seed's On-Premise steps.

Log in with the agent's local account; in **Settings** tick the applications this agent is
set up for; in **App Configurations** click ``+`` beside an application, enter its
credential, **Validate** (the result appears in place, through htmx) and **Save**
("Connection Saved Successfully!"). Messages and errors are the Cloud agent's own
(``flows.validation``, ``flows.credentials``).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from agent.local import store
from agent.local.forms import ConnectionForm
from agent.local.models import Application, Connection
from flows import definition

SAVED = "Connection Saved Successfully!"


def home(request):
    return redirect("settings")


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _report_saved(request, outcome) -> None:
    """Say what Save found: the seed's success message only for a connection that works."""
    if outcome.ok:
        messages.success(request, f"{SAVED} {outcome.message}")
        for warning in outcome.warnings:
            messages.warning(request, warning)
    elif outcome.status is None:
        messages.warning(request, f"Saved, but not checked yet: {outcome.message}")
    else:
        messages.error(request, f"Saved, but not valid: {outcome.message}")


@require_http_methods(["GET", "POST"])
def settings_panel(request):
    """The applications that processflows deployed to this agent use, a checkbox each."""
    if request.method == "POST":
        store.set_enabled(set(request.POST.getlist("enabled")))
        messages.success(request, "Settings saved.")
        return redirect("settings")
    return render(request, "agent/settings.html", {"applications": Application.objects.all()})


def app_configurations(request):
    """Each enabled application with ``+`` (add a connection) and its connections."""
    by_app: dict[str, list[Connection]] = {}
    for connection in Connection.objects.all():
        by_app.setdefault(connection.application, []).append(connection)
    rows = [
        {"app": app, "connections": by_app.get(app.name, []), "installed": _installed(app.name)}
        for app in Application.objects.filter(enabled=True)
    ]
    return render(request, "agent/apps.html", {"rows": rows, "open": request.GET.get("open", "")})


def _installed(name: str) -> bool:
    try:
        definition.application(name)
    except LookupError:
        return False
    return True


def _enabled_app(application: str):
    """The connector of an application enabled in Settings; 404 otherwise."""
    if not Application.objects.filter(name=application, enabled=True).exists():
        raise Http404("This application is not enabled in this agent's Settings panel.")
    try:
        return definition.application(application)
    except LookupError as error:
        raise Http404(str(error.args[0])) from None


def _credential_type(app, type: str | None):
    try:
        return store.connection_type(app.name, type or app.credential_types[0].name)
    except store.InputProblem as error:
        raise Http404(next(iter(error.problems.values()))[0]) from None


def _form_context(*, app, ctype, form, connection=None) -> dict:
    return {
        "app": app,
        "ctype": ctype,
        "form": form,
        "connection": connection,
        "form_id": f"{app.name}-{ctype.name}-{connection.pk if connection else 'new'}",
    }


@require_http_methods(["GET", "POST"])
def connection_new(request, application: str):
    """The credential panel (inline through htmx, or as a page); POST saves and checks."""
    app = _enabled_app(application)
    ctype = _credential_type(app, request.GET.get("type") or request.POST.get("type"))
    form = ConnectionForm(request.POST or None, credential_type=ctype)
    if request.method == "POST" and form.is_valid():
        fields, secrets = form.values()
        try:
            connection = store.save_connection(
                application=application, type=ctype.name, name=form.cleaned_data["name"],
                fields=fields, secrets=secrets,
            )  # fmt: skip
        except store.InputProblem as error:
            form.bind_problems(error.problems)
        else:
            _report_saved(request, store.validate_connection(connection))
            return redirect(f"{reverse('apps')}?open={application}#app-{application}")
    context = _form_context(app=app, ctype=ctype, form=form)
    template = "agent/_connection_form.html" if _is_htmx(request) else "agent/connection.html"
    return render(request, template, context, status=400 if form.errors else 200)


def _outcome(request, run) -> HttpResponse:
    try:
        outcome = run()
    except store.InputProblem as error:
        problems = [m for ms in error.problems.values() for m in ms]
        return render(request, "uikit/_validation_result.html", {"problems": problems})
    return render(request, "uikit/_validation_result.html", {"outcome": outcome})


@require_POST
def connection_check(request, application: str):
    """Validate: the typed values against the application; nothing is saved."""
    app = _enabled_app(application)
    ctype = _credential_type(app, request.POST.get("type"))
    form = ConnectionForm(request.POST, credential_type=ctype)
    form.is_valid()  # the name may be empty while validating
    fields, secrets = form.values()
    return _outcome(
        request,
        lambda: store.validate_typed(
            application=application, type=ctype.name, fields=fields, secrets=secrets
        ),
    )


@require_http_methods(["GET", "POST"])
def connection_edit(request, connection_id: int):
    """A stored connection: its status, and the form to change it (secrets never shown)."""
    connection = get_object_or_404(Connection, pk=connection_id)
    app = definition.application(connection.application)
    ctype = store.connection_type(connection.application, connection.type)
    form = ConnectionForm(
        request.POST or None,
        credential_type=ctype,
        editing=True,
        initial={"name": connection.name, **connection.fields},
    )
    if request.method == "POST" and form.is_valid():
        fields, secrets = form.values()
        try:
            connection = store.save_connection(
                application=connection.application, name=form.cleaned_data["name"],
                fields=fields, secrets=secrets, connection_id=connection.pk,
            )  # fmt: skip
        except store.InputProblem as error:
            form.bind_problems(error.problems)
        else:
            _report_saved(request, store.validate_connection(connection))
            return redirect("connection", connection_id=connection.pk)
    context = _form_context(app=app, ctype=ctype, form=form, connection=connection)
    return render(request, "agent/connection.html", context, status=400 if form.errors else 200)


@require_POST
def connection_edit_check(request, connection_id: int):
    """Validate while editing: typed values, the stored secret where none is typed."""
    connection = get_object_or_404(Connection, pk=connection_id)
    ctype = store.connection_type(connection.application, connection.type)
    form = ConnectionForm(request.POST, credential_type=ctype, editing=True)
    form.is_valid()
    fields, secrets = form.values()
    return _outcome(
        request,
        lambda: store.validate_typed(
            application=connection.application,
            type=connection.type,
            fields=fields,
            secrets=secrets,
            connection_id=connection.pk,
        ),
    )


@require_http_methods(["GET", "POST"])
def connection_delete(request, connection_id: int):
    """Confirm, then delete."""
    connection = get_object_or_404(Connection, pk=connection_id)
    if request.method == "POST":
        store.delete_connection(connection.pk)
        messages.success(request, f"Connection {connection.name} deleted.")
        return redirect("apps")
    return render(request, "agent/connection_delete.html", {"connection": connection})
