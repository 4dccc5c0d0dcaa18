"""Portal pages for personal API tokens (the secret is shown once, right after creation)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.api import services
from portal.tenancy.access import tenant_view
from portal.tenancy.permissions import Perm

EXPIRY_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'deploy script'.")
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, initial=90, label="Expires in"
    )


@tenant_view(write_perm=Perm.VIEW)
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                issued = services.create_token(
                    request.organization, user=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
        if issued is None:
            status = 400
        else:
            form = TokenForm()
    return render(
        request,
        "api/tokens.html",
        {
            "tokens": services.list_tokens(request.organization, user=request.user),
            "form": form,
            "issued": issued,
        },
        status=status,
    )


@tenant_view(write_perm=Perm.VIEW)
@require_POST
def revoke(request, token_id: int):
    token = services.revoke_token(request.organization, user=request.user, token_id=token_id)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("api_tokens:list", org=request.organization.slug)
