"""Start-up refusal when the configured encryption keys cannot decrypt what is stored."""

from django.core.checks import Error, register


@register("vault", deploy=False)
def check_encryption_keys(app_configs=None, databases=None, **kwargs):
    # Skipped when Django runs checks without database access (e.g. makemigrations).
    if not databases:
        return []
    from portal.vault.keys import verify_keyring

    return [
        Error(problem, hint="See README.md, section Encryption keys and rotation.", id="vault.E001")
        for problem in verify_keyring()
    ]


def refuse_to_start_without_keys() -> None:
    """Raise ImproperlyConfigured naming every missing or wrong key (WSGI and workers)."""
    from django.core.exceptions import ImproperlyConfigured

    from portal.vault.keys import verify_keyring

    problems = verify_keyring()
    if problems:
        raise ImproperlyConfigured("Refusing to start: " + " ".join(problems))
