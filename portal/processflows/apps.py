from django.apps import AppConfig


class ProcessflowsConfig(AppConfig):
    name = "portal.processflows"
    label = "processflows"
    verbose_name = "Processflows"
