"""Login (throttled), logout and password change: Django's views with the portal's templates."""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy

from portal.accounts import throttling
from portal.accounts.forms import LoginForm


class LoginView(auth_views.LoginView):
    """Django's login view with per-account and per-client throttling in front of it."""

    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        email = request.POST.get("username", "")
        ip = throttling.client_ip(request)
        wait = throttling.seconds_locked(email=email, ip=ip)
        if wait:
            form = self.get_form()
            minutes = max(1, math.ceil(wait / 60))
            form.errors.clear()
            form.add_error(
                None,
                f"Too many failed login attempts. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
            )
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        throttling.record_failure(
            email=self.request.POST.get("username", ""), ip=throttling.client_ip(self.request)
        )
        return super().form_invalid(form)

    def form_valid(self, form):
        throttling.record_success(email=form.get_user().email)
        return super().form_valid(form)


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    pass
