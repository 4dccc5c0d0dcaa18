"""The organization's dashboard page."""
