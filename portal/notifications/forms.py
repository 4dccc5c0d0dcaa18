from django import forms

from portal.notifications.models import AlertKind, Channel


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    channel = forms.ChoiceField(
        choices=Channel.choices, widget=forms.RadioSelect, initial=Channel.EMAIL, label="Send by"
    )
    kinds = forms.MultipleChoiceField(
        choices=AlertKind.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=AlertKind.values,
        label="When",
    )
    email = forms.CharField(required=False, label="E-mail address")
    url = forms.CharField(
        required=False,
        label="Webhook URL",
        help_text="Receives a signed JSON POST (Standard Webhooks headers).",
    )
