"""Connector failures, worded for the user and free of secrets."""

from __future__ import annotations


class StoreError(Exception):
    """A store could not do what was asked. The message names the store, never its
    password: it is built from the display URL and a sanitized reason only."""

    def __init__(self, store: str, display_url: str, reason: str) -> None:
        self.store = store
        self.display_url = display_url
        self.reason = reason
        super().__init__(f"store {store!r} ({display_url}): {reason}")


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened."""


class UnknownStoreScheme(StoreError):
    """No installed connector handles the URL's scheme."""
