from django.apps import AppConfig


class ProcessflowsConfig(AppConfig):
    name = "portal.processflows"
    label = "processflows"
    verbose_name = "Processflows"

    def ready(self) -> None:
        from portal.processflows.signing import register_with_vault

        register_with_vault()
