"""The REST API's foundation: personal API tokens, authentication, the common error format,
pagination, request-size limits, tenant scoping for API views, and the URL root."""
