"""nigraan: an ODK-compatible forms backend for custody monitoring and survivor support."""

__version__ = "0.1.0"
