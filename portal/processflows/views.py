"""Portal pages for processflows, runs and received events."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.applications import declarations
from portal.processflows import rejections, selectors, services
from portal.processflows.forms import ProcessflowForm
from portal.processflows.models import RunStatus, TriggerEvent
from portal.processflows.registration import processflow_url
from portal.tenancy.access import tenant_view


def _flash(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


def _save(request, form: ProcessflowForm, flow=None):
    """Create or update from a valid form; the flow, or None with the errors on the form."""
    definition = form.definition()
    if definition is None:
        return None
    try:
        if flow is None:
            return services.create_processflow(
                request.organization,
                actor=request.membership,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                definition=definition,
            )
        return services.update_processflow(
            request.organization,
            actor=request.membership,
            processflow_id=flow.pk,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            definition=definition,
        )
    except ValidationError as error:
        form.add_definition_error(error)
        return None


def _helpers(request, exclude=None) -> dict:
    """What the editor offers as values: resource functions and other flows' URLs."""
    flows = selectors.list_processflows(request.organization)
    if exclude is not None:
        flows = flows.exclude(pk=exclude.pk)
    return {
        "resource_functions": [
            (app.display_name, name)
            for app in declarations.all_applications()
            for name in declarations.resource_functions(app.name)
        ],
        "flow_urls": [
            (flow.name, processflow_url(flow)) for flow in flows if flow.trigger_type == "webhook"
        ],
        "action_keys": declarations.action_keys(),
    }


@tenant_view
def processflow_list(request):
    flows = list(selectors.list_processflows(request.organization))
    deployments = selectors.active_deployments(request.organization)
    verification = selectors.delivery_verification(
        request.organization, deployments=deployments.values()
    )
    rows = []
    for flow in flows:
        deployment = deployments.get(flow.pk)
        rows.append(
            {
                "flow": flow,
                "deployment": deployment,
                "verification": verification.get(deployment.pk) if deployment else None,
                "url": processflow_url(flow),
            }
        )
    return render(request, "processflows/list.html", {"rows": rows})


@tenant_view
@require_http_methods(["GET", "POST"])
def processflow_new(request):
    form = ProcessflowForm(
        request.POST or None, organization=request.organization, initial={"trigger_type": "webhook"}
    )
    if request.method == "POST" and form.is_valid():
        flow = _save(request, form)
        if flow is not None:
            messages.success(
                request, f"Processflow {flow.name} saved (version 1). Deploy it when ready."
            )
            return redirect(
                "processflows:detail", org=request.organization.slug, processflow_id=flow.pk
            )
    return render(
        request,
        "processflows/edit.html",
        {"form": form, **_helpers(request)},
        status=400 if form.errors else 200,
    )


@tenant_view
@require_http_methods(["GET", "POST"])
def processflow_edit(request, processflow_id: int):
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    latest = flow.versions.first()
    form = ProcessflowForm(
        request.POST or None,
        organization=request.organization,
        initial=ProcessflowForm.initial_from(flow, latest.definition),
    )
    if request.method == "POST" and form.is_valid():
        before = latest.number
        saved = _save(request, form, flow)
        if saved is not None:
            number = saved.versions.first().number
            messages.success(
                request,
                f"Saved as version {number}. Deploy again to run it."
                if number != before
                else "Saved. The definition did not change.",
            )
            return redirect(
                "processflows:detail", org=request.organization.slug, processflow_id=flow.pk
            )
    return render(
        request,
        "processflows/edit.html",
        {"form": form, "flow": flow, **_helpers(request, exclude=flow)},
        status=400 if form.errors else 200,
    )


def _deployment_panel(request, flow) -> dict:
    """What the deployment panel shows: the active deployment and how its deliveries fare."""
    deployment = selectors.active_deployment(flow)
    verification = None
    if deployment is not None:
        verification = selectors.delivery_verification(
            request.organization, deployments=[deployment]
        ).get(deployment.pk)
    return {
        "flow": flow,
        "url": processflow_url(flow),
        "deployment": deployment,
        "verification": verification,
    }


@tenant_view
def processflow_detail(request, processflow_id: int):
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    return render(
        request,
        "processflows/detail.html",
        {
            **_deployment_panel(request, flow),
            "deployments": flow.deployments.select_related("version")[:10],
            "versions": flow.versions.all()[:10],
            "latest": flow.versions.first(),
            "runs": selectors.list_runs(request.organization, processflow=flow)[:20],
            "events": selectors.list_events(request.organization, processflow=flow)[:20],
            "rejections": rejections.with_unstored_counts(
                selectors.list_rejections(request.organization, processflow=flow)[:10]
            ),
        },
    )


@tenant_view
def processflow_state(request, processflow_id: int):
    """The deployment panel alone, polled by htmx while registration is pending."""
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    return render(request, "processflows/_deployment.html", _deployment_panel(request, flow))


@tenant_view
@require_POST
def processflow_deploy(request, processflow_id: int):
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    try:
        deployment = services.deploy(
            request.organization, actor=request.membership, processflow_id=flow.pk
        )
    except ValidationError as error:
        _flash(request, error)
    else:
        messages.success(
            request, f"Deployed version {deployment.version.number} to the Cloud agent."
        )
    return redirect("processflows:detail", org=request.organization.slug, processflow_id=flow.pk)


@tenant_view
@require_POST
def processflow_undeploy(request, processflow_id: int):
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    try:
        services.undeploy(request.organization, actor=request.membership, processflow_id=flow.pk)
    except ValidationError as error:
        _flash(request, error)
    else:
        messages.success(request, "Undeployed. The Processflow URL no longer accepts events.")
    return redirect("processflows:detail", org=request.organization.slug, processflow_id=flow.pk)


@tenant_view
@require_http_methods(["GET", "POST"])
def processflow_delete(request, processflow_id: int):
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    if request.method == "POST":
        try:
            services.delete_processflow(
                request.organization, actor=request.membership, processflow_id=flow.pk
            )
        except ValidationError as error:
            _flash(request, error)
            return redirect(
                "processflows:detail", org=request.organization.slug, processflow_id=flow.pk
            )
        messages.success(request, f"Processflow {flow.name} deleted.")
        return redirect("processflows:list", org=request.organization.slug)
    return render(request, "processflows/delete.html", {"flow": flow})


@tenant_view
def run_list(request):
    filters = selectors.run_filters(request.organization, request.GET)
    for field, problems in (filters.problems or {}).items():
        for problem in problems:
            messages.error(request, f"{field.capitalize()}: {problem}")
    runs = selectors.list_runs(request.organization, **filters.as_kwargs())
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "processflows/runs.html",
        {
            "page": page,
            "statuses": RunStatus.choices,
            "flows": selectors.list_processflows(request.organization),
            "filters": request.GET,
        },
    )


@tenant_view
def run_detail(request, run_id: int):
    run = selectors.access_run_by_id(request.organization, run_id)
    return render(
        request,
        "processflows/run.html",
        {"run": run, "steps": run.steps.all(), "replays": run.replays.order_by("pk")},
    )


@tenant_view
@require_POST
def run_replay(request, run_id: int):
    run = selectors.access_run_by_id(request.organization, run_id)
    try:
        new = services.replay_run(request.organization, actor=request.membership, run_id=run.pk)
    except ValidationError as error:
        _flash(request, error)
        return redirect("processflows:run", org=request.organization.slug, run_id=run.pk)
    messages.success(request, f"Replaying as run {new.pk}.")
    return redirect("processflows:run", org=request.organization.slug, run_id=new.pk)


@tenant_view
def event_list(request):
    events = Paginator(selectors.list_events(request.organization), 50).get_page(
        request.GET.get("page")
    )
    refused = rejections.with_unstored_counts(selectors.list_rejections(request.organization)[:50])
    return render(request, "processflows/events.html", {"page": events, "rejections": refused})


@tenant_view
def event_detail(request, event_id: int):
    event: TriggerEvent = selectors.access_event_by_id(request.organization, event_id)
    body = bytes(event.body).decode("utf-8", errors="replace")
    return render(
        request, "processflows/event.html", {"event": event, "body": body, "runs": event.runs.all()}
    )
