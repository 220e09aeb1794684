"""Registry API."""
