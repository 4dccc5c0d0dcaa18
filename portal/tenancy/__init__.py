"""Tenancy: organizations, memberships and roles, invitations, and the one path by which
every request finds its tenant (``portal.tenancy.access``)."""
