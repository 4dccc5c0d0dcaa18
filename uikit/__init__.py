"""What the portal's pages and the agent's local UI share: the stylesheet, htmx, the small
form behaviours and the form partials (a field, form errors, a validation result, the
credential panel). A Django app of templates and static files only: it imports nothing of
the project, so the agent can list it without reading anything of the portal.
"""
