from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm

from portal.accounts import throttling


class LoginForm(AuthenticationForm):
    """E-mail and password; the e-mail field keeps Django's name ``username``."""

    username = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def get_invalid_login_error(self):
        wait = throttling.locked_seconds(self.request) if self.request is not None else 0
        if wait:
            return forms.ValidationError(
                throttling.lockout_message(wait, what="login"), code="throttled"
            )
        return super().get_invalid_login_error()


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's password change form whose check of the current password is a login attempt:
    it goes through ``authenticate()``, so it shares the login lockout."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        checked = authenticate(
            self.request, username=self.user.get_username(), password=old_password
        )
        wait = throttling.locked_seconds(self.request) if self.request is not None else 0
        if wait:
            raise forms.ValidationError(
                throttling.lockout_message(wait, what="password"), code="throttled"
            )
        if checked is None or checked.pk != self.user.pk:
            raise forms.ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password
