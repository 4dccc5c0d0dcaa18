"""The agent's own Django app: its store (connections, applications, registration, outbox)
and the local UI's pages."""
