from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "portal.api"
    label = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from portal.api import (
            schema,  # noqa: F401  (registers the OpenAPI auth extension)
            signals,  # noqa: F401  (ending a membership revokes its tokens)
        )
