"""Alerts: the organization's rules, and every alert raised with where it was sent."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.notifications import selectors, services
from portal.notifications.forms import AlertRuleForm
from portal.tenancy.access import tenant_view


def _page(request, form, *, secret=None, status=200):
    alerts = Paginator(selectors.list_alerts(request.organization), 25).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "notifications/alerts.html",
        {
            "rules": selectors.list_rules(request.organization),
            "form": form,
            "page": alerts,
            "secret": secret,
        },
        status=status,
    )


@tenant_view
@require_http_methods(["GET", "POST"])
def alerts(request):
    form = AlertRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.create_rule(
                request.organization, actor=request.membership, **form.cleaned_data
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error(field if field in form.fields else None, problem)
        else:
            messages.success(request, f"Alert rule {created.rule.name} created.")
            if created.secret:
                # Shown once, on this answer only: not redirected, never stored in plain text.
                return _page(request, AlertRuleForm(), secret=(created.rule, created.secret))
            return redirect("notifications:alerts", org=request.organization.slug)
    return _page(request, form, status=400 if form.errors else 200)


@tenant_view
@require_POST
def rule_toggle(request, rule_id: int):
    rule = selectors.access_rule_by_id(request.organization, rule_id)
    services.set_rule_enabled(
        request.organization, actor=request.membership, rule_id=rule.pk, enabled=not rule.enabled
    )
    return redirect("notifications:alerts", org=request.organization.slug)


@tenant_view
@require_POST
def rule_delete(request, rule_id: int):
    rule = selectors.access_rule_by_id(request.organization, rule_id)
    services.delete_rule(request.organization, actor=request.membership, rule_id=rule.pk)
    messages.success(request, f"Alert rule {rule.name} deleted.")
    return redirect("notifications:alerts", org=request.organization.slug)
