"""The credential vault: envelope encryption of per-tenant secrets, credentials and their
audit log, and the Manage > App pages and API."""
