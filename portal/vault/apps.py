from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "portal.vault"
    label = "vault"
    verbose_name = "Credential vault"

    def ready(self) -> None:
        from portal.vault import checks  # noqa: F401  (registers the key check)
