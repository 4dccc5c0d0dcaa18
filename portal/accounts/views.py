"""Login and password change (both throttled), logout, and the admin's way to the login page:
Django's views with the portal's templates."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme

from portal.accounts import throttling
from portal.accounts.forms import LoginForm, ThrottledPasswordChangeForm


class LoginView(auth_views.LoginView):
    """Django's login view; the lockout itself is in the authentication backend (see
    ``accounts.backends``), this page only answers a refused attempt with 429."""

    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        return throttling.too_many_requests(self.request, super().form_invalid(form))


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change; checking the current password is a throttled login attempt."""

    template_name = "accounts/password_change.html"
    form_class = ThrottledPasswordChangeForm
    success_url = reverse_lazy("home")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)

    def form_invalid(self, form):
        return throttling.too_many_requests(self.request, super().form_invalid(form))


def admin_login(request):
    """The admin's login door is the portal's login page, so it has the portal's lockout.

    Anonymous people go to the portal's login page (then back to where they were going in the
    admin); a logged-in person with admin rights goes on; one without them is refused here,
    where the admin would otherwise send them back and forth between the two pages.
    """
    target = request.GET.get(REDIRECT_FIELD_NAME, "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    target = target or reverse("admin:index")
    if not request.user.is_authenticated:
        return redirect_to_login(target, login_url=settings.LOGIN_URL)
    if request.user.is_active and request.user.is_staff:
        return redirect(target)
    raise PermissionDenied(f"You are logged in as {request.user.email}, who may not use the admin.")


class LogoutView(auth_views.LogoutView):
    pass
