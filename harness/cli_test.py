"""Placeholder: the issue that owns this command group replaces this module."""


def register(sub) -> None:
    pass
