from django import forms
from django.contrib.auth.forms import AuthenticationForm

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
