"""Placeholder: the issue that owns this plugin replaces this module."""
