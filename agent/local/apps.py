from django.apps import AppConfig


class LocalConfig(AppConfig):
    name = "agent.local"
    label = "agent"
    verbose_name = "On-Premise agent"
