"""The janitor service."""
