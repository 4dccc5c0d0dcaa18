"""Portal pages for processflows, runs and received events."""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

import flows
from portal.processflows import designer, rejections, selectors, services
from portal.processflows.models import RunStatus, TriggerEvent
from portal.processflows.registration import processflow_url
from portal.tenancy.access import tenant_view
from portal.vault import services as vault_services


def _flash(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


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


ERROR_PATH = re.compile(r"^steps\[(\d+)\]")


def _located(error: ValidationError) -> list[dict]:
    """A service's ValidationError as messages located in the designer: ``where`` is the
    fieldset (``trigger``, ``step-2``, ``name``) the problem belongs to."""
    if not hasattr(error, "error_dict"):
        return [{"where": "", "path": "", "message": m} for m in error.messages]
    found = []
    for path, problems in error.message_dict.items():
        match = ERROR_PATH.match(path)
        where = (
            f"step-{match.group(1)}" if match else "trigger" if path.startswith("trigger") else path
        )
        found += [{"where": where, "path": path, "message": p} for p in problems]
    return found


def _test_step(request, draft, index: int) -> dict:
    """Run step ``index`` once now (the Test step button); its answer becomes the step's
    sample. A real, audited call; no run is created."""
    step = draft.steps[index]
    if step.get("type") == "map":
        return {"ok": False, "message": "A map step has nothing to run."}
    if draft.agent_group:
        # The credential is on the agents: the portal cannot make the call with it.
        return {
            "ok": False,
            "message": "This flow runs on an on-premise agent group, whose credentials stay "
            "on its agents: test the credential there (Validate), and the step in a run.",
        }
    context = {"trigger": draft.samples.get("trigger") or {}, "steps": draft.samples["steps"]}
    try:
        outcome = vault_services.execute_action(
            request.organization,
            actor=request.membership,
            application=step.get("application") or "",
            action=step.get("action") or "",
            credential_id=step.get("credential") or 0,
            filters=step.get("filters") or [],
            document=_rendered_document(step, context),
            context=context,
            limit=20,
        )
    except (ValidationError, Http404) as error:
        messages_ = error.messages if isinstance(error, ValidationError) else []
        return {"ok": False, "message": " ".join(messages_) or "Choose a credential."}
    if outcome.ok and step.get("name"):
        draft.samples["steps"][step["name"]] = outcome.data
    return {
        "ok": outcome.ok,
        "status": outcome.status,
        "message": outcome.message,
        "request": outcome.request,
    }


def _rendered_document(step: dict, context: dict):
    document = step.get("document")
    if document in (None, ""):
        return None
    try:
        return flows.templating.render(document, context)
    except flows.templating.TemplateError:
        return document


def _load_trigger_sample(request, draft, flow) -> str:
    """Fill the trigger's sample: the flow's last received event, else a record fetched
    now (polling source) or the connector's documented example (webhook events)."""
    trigger = draft.trigger
    if flow is not None:
        last = designer.draft_of(flow, draft.definition).samples
        if last.get("trigger") is not None:
            draft.samples["trigger"], draft.samples["trigger_from"] = (
                last["trigger"], last["trigger_from"],
            )  # fmt: skip
            return ""
    if trigger.get("type") == "polling":
        source = trigger.get("source") or {}
        if not source.get("action"):
            return "Choose a source action to fetch a sample record from."
        if draft.agent_group:
            return "The source's credential is on the agents: a sample arrives with the first poll."
        try:
            outcome = vault_services.execute_action(
                request.organization,
                actor=request.membership,
                application=source.get("application") or "",
                action=source["action"],
                credential_id=source.get("credential") or 0,
                filters=source.get("filters") or [],
                limit=1,
                purpose="Designer sample",
            )
        except (ValidationError, Http404):
            return "Choose the source's credential first."
        if not outcome.ok:
            return outcome.message
        items = outcome.items if outcome.items is not None else [outcome.data]
        if not items:
            return "The source returned no record yet."
        draft.samples["trigger"], draft.samples["trigger_from"] = items[0], "the latest record"
        return ""
    example = designer.declared_example(trigger.get("application") or "", trigger.get("events"))
    if example is None:
        return "This application documents no example event."
    draft.samples["trigger"] = example
    draft.samples["trigger_from"] = "the documented example"
    return ""


@tenant_view
@require_http_methods(["GET", "POST"])
def processflow_designer(request, processflow_id: int | None = None):
    """The designer: build or edit a processflow. Every button posts the whole form; the
    page is rendered again from it (htmx swaps the form in place)."""
    flow = (
        selectors.access_processflow_by_id(request.organization, processflow_id)
        if processflow_id is not None
        else None
    )
    extra: dict = {"errors": [], "tests": {}, "notice": ""}
    focus = None
    if request.method == "GET":
        draft = (
            designer.draft_of(flow, flow.versions.first().definition)
            if flow is not None
            else designer.new_draft()
        )
    else:
        draft = designer.draft_from_post(request.POST)
        op = request.POST.get("op", "refresh")
        if op == "save":
            saved = _save_draft(request, draft, flow, extra)
            if saved is not None:
                target = reverse(
                    "processflows:detail",
                    kwargs={"org": request.organization.slug, "processflow_id": saved.pk},
                )
                if request.htmx:
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = target
                    return response
                return redirect(target)
        elif op.startswith("test-"):
            index = int(op.removeprefix("test-")) if op[5:].isdigit() else -1
            if 0 <= index < len(draft.steps):
                extra["tests"][index] = _test_step(request, draft, index)
                focus = f"step-{index}-test"
        elif op == "sample":
            extra["notice"] = _load_trigger_sample(request, draft, flow)
            focus = "load-sample"
        elif op == "import":
            try:
                draft.definition = designer.definition_from_import(request.POST.get("import", ""))
                extra["notice"] = "Definition imported: check it, then save."
            except ValueError as error:
                extra["errors"].append({"where": "import", "path": "", "message": str(error)})
        else:
            focus = designer.apply(draft, op)
    context = designer.context(request.organization, draft, flow=flow)
    context.update(extra)
    context["flow"] = flow
    context["focus"] = focus
    context["save_failed"] = bool(extra["errors"]) and request.POST.get("op") == "save"
    status = 400 if context["save_failed"] and not request.htmx else 200
    return render(request, "processflows/designer.html", context, status=status)


def _save_draft(request, draft, flow, extra):
    try:
        if flow is None:
            saved = services.create_processflow(
                request.organization,
                actor=request.membership,
                name=draft.name,
                description=draft.description,
                definition=draft.definition,
                agent_group=draft.agent_group,
            )
            messages.success(
                request, f"Processflow {saved.name} saved (version 1). Deploy it when ready."
            )
            return saved
        before = flow.versions.first().number
        saved = services.update_processflow(
            request.organization,
            actor=request.membership,
            processflow_id=flow.pk,
            name=draft.name,
            description=draft.description,
            definition=draft.definition,
            agent_group=draft.agent_group,
        )
    except ValidationError as error:
        extra["errors"] = _located(error)
        return None
    number = saved.versions.first().number
    messages.success(
        request,
        f"Saved as version {number}. Deploy again to run it."
        if number != before
        else "Saved. The definition did not change.",
    )
    return saved


@tenant_view
def processflow_definition(request, processflow_id: int):
    """The latest definition as a JSON file (the document the API takes)."""
    flow = selectors.access_processflow_by_id(request.organization, processflow_id)
    response = JsonResponse(flow.versions.first().definition, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="processflow-{flow.pk}.json"'
    return response


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
            request,
            f"Deployed version {deployment.version.number} to the "
            f"{deployment.get_agent_display()}.",
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
