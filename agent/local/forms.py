"""The connection form, generated from the connector's declared fields exactly as the
portal's credential form is (the same labels, help texts and password inputs)."""

from __future__ import annotations

from django import forms


class ConnectionForm(forms.Form):
    """A name plus one input per declared field; secret fields are password inputs that are
    never filled back in (a stored secret is replaced only if a new value is typed)."""

    name = forms.CharField(max_length=100, label="Connection name")

    def __init__(self, *args, credential_type, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.credential_type = credential_type
        self.secret_names = []
        for field in credential_type.fields:
            if field.secret:
                self.secret_names.append(field.name)
                help_text = field.help_text or ""
                if editing:
                    help_text = "Stored. Type a new value to replace it; leave empty to keep it."
                self.fields[field.name] = forms.CharField(
                    label=field.label,
                    required=False,  # the store says precisely what is missing
                    strip=False,
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

    def bind_problems(self, problems: dict[str, list[str]]) -> None:
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
