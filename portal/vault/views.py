"""Manage > App: applications, their credentials by type, and each credential's page.

The flow of the seed: expand an application, then Credential, then the REST node; Add New
Credential; enter the token; Validate (the result appears in place, through htmx); Save
("Connection Saved Successfully!").
"""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from portal.applications import declarations
from portal.tenancy.access import tenant_view
from portal.vault import selectors, services
from portal.vault.forms import CredentialForm

SAVED = "Connection Saved Successfully!"


def _report_saved(request, outcome) -> None:
    """Say what Save found: the seed's success message only for a credential that works."""
    if outcome.ok:
        messages.success(request, f"{SAVED} {outcome.message}")
        for warning in outcome.warnings:
            messages.warning(request, warning)
    elif outcome.status is None:
        messages.warning(
            request,
            f"Saved, but not checked yet: {outcome.message} It is validated again shortly.",
        )
    else:
        messages.error(request, f"Saved, but not valid: {outcome.message}")


def _apps_url(organization, application: str, type: str) -> str:
    base = reverse("vault:apps", kwargs={"org": organization.slug})
    return f"{base}?open={application}&type={type}#node-{application}-{type}"


def _bind_errors(form: CredentialForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
    else:
        for problem in error.messages:
            form.add_error(None, problem)


def _not_installed(request, error: ValidationError) -> HttpResponse:
    """A 404 page naming the applications (or credential types) there are."""
    return render(request, "error.html", {"status": 404, "message": error.messages[0]}, status=404)


@tenant_view
def apps(request):
    """Every installed application, its credential types, and the organization's credentials
    under each, in one query whatever their number."""
    by_node = defaultdict(list)
    # The tree shows no creator: select_related(None) drops the selector's join, which
    # Django refuses to combine with only().
    for credential in (
        selectors.list_credentials(request.organization)
        .select_related(None)
        .only(
            "id", "application", "type", "name", "status", "status_message", "checked_at",
            "account",
        )
    ):  # fmt: skip
        by_node[(credential.application, credential.type)].append(credential)
    tree = [
        {
            "app": app,
            "count": sum(len(by_node[(app.name, t.name)]) for t in app.credential_types),
            "types": [
                {"type": t, "credentials": by_node[(app.name, t.name)]}
                for t in app.credential_types
            ],
            # The connector keeps actions in a name -> Action mapping; templates need a list.
            "actions": list(app.actions.values()),
            "webhook_events": list(app.webhook_events),
        }
        for app in declarations.all_applications()
    ]
    return render(
        request,
        "vault/apps.html",
        {
            "tree": tree,
            "open_app": request.GET.get("open", ""),
            "open_type": request.GET.get("type", ""),
        },
    )


def _credential_form_context(request, *, application, type, form, credential=None):
    app = declarations.get_application(application)
    spec = declarations.credential_type(application, type)
    return {
        "app": app,
        "ctype": spec,
        "form": form,
        "credential": credential,
        "form_id": f"{application}-{type}-{credential.pk if credential else 'new'}",
    }


@tenant_view
@require_http_methods(["GET", "POST"])
def credential_new(request, application: str):
    """The Add New Credential form (inline in the tree through htmx, or as a page); POST
    saves."""
    type = request.GET.get("type") or request.POST.get("type") or "rest"
    try:
        spec = declarations.credential_type(application, type)
    except ValidationError as error:
        return _not_installed(request, error)
    form = CredentialForm(request.POST or None, credential_type=spec)
    if request.method == "POST" and form.is_valid():
        name, fields, secrets = form.split()
        try:
            credential = services.create_credential(
                request.organization,
                actor=request.membership,
                application=application,
                type=type,
                name=name,
                fields=fields,
                secrets=secrets,
                validate_later=False,
            )
        except ValidationError as error:
            _bind_errors(form, error)
        else:
            _report_saved(
                request,
                services.validate_after_save(
                    request.organization, actor=request.membership, credential_id=credential.pk
                ),
            )
            return redirect(_apps_url(request.organization, application, type))
    context = _credential_form_context(request, application=application, type=type, form=form)
    template = "vault/_credential_form.html" if request.htmx else "vault/credential_new.html"
    return render(request, template, context, status=400 if form.errors else 200)


@tenant_view
@require_POST
def credential_check(request, application: str):
    """The Validate button of the new-credential form: nothing is saved."""
    type = request.POST.get("type") or "rest"
    try:
        spec = declarations.credential_type(application, type)
    except ValidationError as error:
        return _not_installed(request, error)
    form = CredentialForm(request.POST, credential_type=spec)
    form.is_valid()  # the name may be empty while validating; the secrets are what matter
    fields, secrets = form.values()
    return _outcome(
        request,
        lambda: services.check_connection(
            request.organization,
            actor=request.membership,
            application=application,
            type=type,
            fields=fields,
            secrets=secrets,
        ),
    )


def _outcome(request, run) -> HttpResponse:
    """Run a validation and render its result as the fragment htmx swaps in."""
    try:
        outcome = run()
    except ValidationError as error:
        return render(request, "uikit/_validation_result.html", {"problems": error.messages})
    return render(request, "uikit/_validation_result.html", {"outcome": outcome})


@tenant_view
@require_http_methods(["GET", "POST"])
def credential_detail(request, credential_id: int):
    """A credential: status, account, edit (secrets replaceable, never shown), history."""
    credential = selectors.access_credential_by_id(request.organization, credential_id)
    spec = declarations.credential_type(credential.application, credential.type)
    initial = {"name": credential.name, **credential.fields}
    form = CredentialForm(
        request.POST or None,
        credential_type=spec,
        editing=True,
        hints=credential.secret_hints,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        name, fields, secrets = form.split()
        try:
            before = credential.status
            updated = services.update_credential(
                request.organization,
                actor=request.membership,
                credential_id=credential.pk,
                name=name,
                fields=fields,
                secrets=secrets,
                validate_later=False,
            )
        except ValidationError as error:
            _bind_errors(form, error)
        else:
            if updated.status == before and before != "unvalidated":
                messages.success(request, SAVED)  # only the name changed: nothing to check
            else:
                _report_saved(
                    request,
                    services.validate_after_save(
                        request.organization,
                        actor=request.membership,
                        credential_id=credential.pk,
                    ),
                )
            return redirect(
                "vault:credential", org=request.organization.slug, credential_id=credential.pk
            )
    context = _credential_form_context(
        request,
        application=credential.application,
        type=credential.type,
        form=form,
        credential=credential,
    )
    masked = credential.masked_secrets()
    context["masked_secrets"] = [(f.label, masked[f.name]) for f in spec.fields if f.name in masked]
    context["events"] = selectors.list_events(request.organization, credential=credential)[:50]
    return render(
        request, "vault/credential_detail.html", context, status=400 if form.errors else 200
    )


@tenant_view
@require_POST
def credential_detail_check(request, credential_id: int):
    """The Validate button of the edit form: typed values, stored secrets where left empty."""
    credential = selectors.access_credential_by_id(request.organization, credential_id)
    spec = declarations.credential_type(credential.application, credential.type)
    form = CredentialForm(request.POST, credential_type=spec, editing=True)
    form.is_valid()
    fields, secrets = form.values()
    return _outcome(
        request,
        lambda: services.check_connection(
            request.organization,
            actor=request.membership,
            application=credential.application,
            type=credential.type,
            fields=fields,
            secrets=secrets,
            credential_id=credential.pk,
        ),
    )


@tenant_view
@require_POST
def credential_validate(request, credential_id: int):
    """Re-validate the stored credential and record the result."""
    credential = selectors.access_credential_by_id(request.organization, credential_id)
    if request.htmx:
        return _outcome(
            request,
            lambda: services.validate_credential(
                request.organization, actor=request.membership, credential_id=credential.pk
            ),
        )
    outcome = services.validate_credential(
        request.organization, actor=request.membership, credential_id=credential.pk
    )
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    return redirect("vault:credential", org=request.organization.slug, credential_id=credential.pk)


@tenant_view
@require_http_methods(["GET", "POST"])
def credential_delete(request, credential_id: int):
    """Confirm, then delete."""
    credential = selectors.access_credential_by_id(request.organization, credential_id)
    if request.method == "POST":
        services.delete_credential(
            request.organization, actor=request.membership, credential_id=credential.pk
        )
        messages.success(request, f"Credential {credential.name} deleted.")
        return redirect(_apps_url(request.organization, credential.application, credential.type))
    return render(request, "vault/credential_delete.html", {"credential": credential})
