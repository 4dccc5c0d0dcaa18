"""Login (throttled), logout and password change: Django's views with the portal's templates."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.urls import reverse_lazy

from portal.accounts import throttling
from portal.accounts.forms import LoginForm


class LoginView(auth_views.LoginView):
    """Django's login view; the lockout itself is in the authentication backend (see
    ``accounts.backends``), this page only answers a refused attempt with 429."""

    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        return throttling.too_many_requests(self.request, super().form_invalid(form))


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    pass
