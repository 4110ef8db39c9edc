"""Errors that the CLI turns into one clear line and exit status 2."""

from __future__ import annotations

__all__ = ["ConfigError", "QNetError", "SpikeforgeError"]


class SpikeforgeError(Exception):
    """Bad input a user can fix; ``str()`` is the one line the CLI prints."""


class QNetError(SpikeforgeError, ValueError):
    """A QNet field is invalid; names the file (when known), the layer and the field."""

    def __init__(self, layer: str, field: str, message: str, file: str | None = None):
        self.layer = layer
        self.field = field
        self.message = message
        self.file = file
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}layer {self.layer}, field {self.field}: {self.message}"


class ConfigError(SpikeforgeError, ValueError):
    """A configuration file is invalid; names the file and the field."""

    def __init__(self, file: str, field: str, message: str):
        self.file = file
        self.field = field
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        if self.field in ("", "-"):
            return f"{self.file}: {self.message}"
        return f"{self.file}: field {self.field}: {self.message}"
