"""The catalogue of problems nigraan reports to people.

Each error carries a code, an HTTP status for the API and server, and a message that says what
happened and what to do. Renderers (CLI text now; OpenRosa XML, JSON and HTML later) read these
attributes rather than parsing messages.
"""

from __future__ import annotations


class NigraanError(Exception):
    """Base of every error nigraan raises on purpose."""

    code = "nigraan.error"
    status = 500

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(NigraanError):
    """A setting is unknown, has the wrong type, or points at something missing."""

    code = "config.invalid"
    status = 500


class FormError(NigraanError):
    """A form cannot be compiled or breaks a project rule."""

    code = "form.invalid"
    status = 400


class KeyFileError(NigraanError):
    """An encryption key is missing or unreadable."""

    code = "keys.invalid"
    status = 500
