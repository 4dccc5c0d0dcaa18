"""``manage.py rotate_encryption_keys [--reencrypt]``: see ``portal.vault.rotation``."""

from django.core.management.base import BaseCommand, CommandError

from flows import envelope as crypto
from portal.vault import rotation
from portal.vault.keys import keyring


class Command(BaseCommand):
    help = (
        "Re-wrap every organization's data key under the first key of PORTAL_ENCRYPTION_KEYS; "
        "with --reencrypt, also re-encrypt every secret under a fresh data key. Online, "
        "batched, resumable. Afterwards older keys can be removed from PORTAL_ENCRYPTION_KEYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reencrypt", action="store_true")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, reencrypt: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        say = self.stdout.write
        try:
            say(f"Primary key: {keyring().primary_id!r}; configured: {', '.join(keyring().ids)}.")
            # Re-encrypting first retires the old data keys instead of re-wrapping them.
            reencrypted = (
                rotation.reencrypt(batch_size=batch_size, progress=say) if reencrypt else {}
            )
            rewrapped = rotation.rewrap_data_keys(batch_size=batch_size, progress=say)
        except crypto.VaultError as error:
            raise CommandError(str(error)) from None
        say(self.style.SUCCESS("Done."))
        say(f"Data keys re-wrapped, by previous key id: {dict(rewrapped) or 'none'}")
        if reencrypt:
            say(
                "Credentials re-encrypted, by the key id of the data key they left: "
                f"{dict(reencrypted) or 'none'}"
            )
