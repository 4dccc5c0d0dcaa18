from django.apps import AppConfig


class UikitConfig(AppConfig):
    name = "uikit"
    label = "uikit"
    verbose_name = "Shared UI"
