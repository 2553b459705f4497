"""Repositories: small async functions taking a session; the caller owns the transaction."""
