"""Credential forms, generated from the connector's declared fields."""

from __future__ import annotations

from django import forms


class CredentialForm(forms.Form):
    """A name plus one input per declared field; secret fields are password inputs that are
    never filled back in (an existing secret is replaced only if a new value is typed)."""

    name = forms.CharField(max_length=100, label="Credential name")

    def __init__(self, *args, credential_type, editing: bool = False, hints=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.credential_type = credential_type
        self.secret_names = []
        for field in credential_type.fields:
            if field.secret:
                self.secret_names.append(field.name)
                hint = (hints or {}).get(field.name)
                help_text = field.help_text or ""
                if editing:
                    shown = f"••••{hint}" if hint else "••••"
                    help_text = (
                        f"Stored: {shown}. Type a new value to replace it; leave empty to keep it."
                    )
                self.fields[field.name] = forms.CharField(
                    label=field.label,
                    required=False,  # the service says precisely what is missing
                    strip=False,  # the service strips and explains; a form must not lose input
                    widget=forms.PasswordInput(
                        render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
                    ),
                    help_text=help_text,
                )
            else:
                self.fields[field.name] = forms.CharField(
                    label=field.label,
                    required=False,
                    help_text=field.help_text or "",
                    initial=field.default if getattr(field, "default", None) is not None else None,
                )

    def values(self) -> tuple[dict[str, str], dict[str, str]]:
        """(non-secret fields, secret fields that were typed); usable on an invalid form."""
        data = getattr(self, "cleaned_data", {})
        fields = {
            name: data.get(name, "")
            for name in self.fields
            if name != "name" and name not in self.secret_names
        }
        secrets = {name: data[name] for name in self.secret_names if data.get(name)}
        return fields, secrets

    def split(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(name, non-secret fields, typed secret fields) of a valid form."""
        return (self.cleaned_data["name"], *self.values())
