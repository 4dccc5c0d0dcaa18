"""People: the custom user model, login with throttling, password change."""
