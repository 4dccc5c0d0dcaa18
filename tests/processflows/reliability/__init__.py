"""Shared pieces of the intake, outbox, execution and fault tests (see ``support``)."""
