"""``manage.py bootstrap``: ensure an organization and its owner exist (idempotent)."""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.tenancy.services import bootstrap


class Command(BaseCommand):
    help = (
        "Create an organization and its owner if they do not exist; safe to run on every "
        "start. Arguments default to PORTAL_BOOTSTRAP_ORG_NAME, PORTAL_BOOTSTRAP_ORG_SLUG, "
        "PORTAL_BOOTSTRAP_EMAIL and PORTAL_BOOTSTRAP_PASSWORD."
    )

    def add_arguments(self, parser):
        env = os.environ.get
        parser.add_argument("--org-name", default=env("PORTAL_BOOTSTRAP_ORG_NAME", "Demo"))
        parser.add_argument("--org-slug", default=env("PORTAL_BOOTSTRAP_ORG_SLUG", ""))
        parser.add_argument("--email", default=env("PORTAL_BOOTSTRAP_EMAIL", "admin@example.com"))
        parser.add_argument(
            "--password-env",
            default="PORTAL_BOOTSTRAP_PASSWORD",
            help="Environment variable holding the owner's password (kept out of shell "
            "history). Without one, a new owner gets a generated password, printed once.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when any organization exists already (for `make run`).",
        )

    def handle(self, *args, org_name, org_slug, email, password_env, if_empty, **options):
        from portal.tenancy.models import Organization

        if if_empty and Organization.objects.exists():
            return
        try:
            result = bootstrap(
                org_name=org_name,
                org_slug=org_slug,
                email=email,
                password=os.environ.get(password_env, ""),
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        org = result.organization
        verb = "Created" if result.created_organization else "Found"
        self.stdout.write(f"{verb} organization {org.name!r} (slug {org.slug}).")
        if result.created_user:
            self.stdout.write(f"Created owner {result.user.email}.")
        else:
            self.stdout.write(f"Owner {result.user.email} exists; its password is unchanged.")
        if result.password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Log in as {result.user.email} with the generated password: {result.password}"
                )
            )
