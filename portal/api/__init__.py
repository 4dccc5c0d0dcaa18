"""The REST API's top: personal API tokens, their authentication, the common error format,
pagination, request-size limits, and the URL root. Tenant scoping for API views lives with
the pages' in ``portal.tenancy.access``; nothing below this package imports it."""
