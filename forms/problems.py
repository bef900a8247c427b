"""What the form rules report: a problem, where it is, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Location:
    """A place in a form or reference file, as a form author would look for it."""

    file: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None  # the header text
    letter: str | None = None  # the spreadsheet column letter

    def __str__(self) -> str:
        parts = [self.file]
        if self.sheet:
            parts.append(f"sheet '{self.sheet}'")
        if self.row:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column '{self.column}'" + (f" ({self.letter})" if self.letter else ""))
        return ", ".join(parts)


@dataclass(frozen=True)
class Problem:
    level: str  # ERROR or WARNING
    message: str
    location: Location
    hint: str = ""
    source: str = "nigraan"  # nigraan | pyxform | odk-validate

    def __str__(self) -> str:
        text = f"{self.level.upper()} [{self.source}] {self.location}: {self.message}"
        return f"{text}\n    how to fix: {self.hint}" if self.hint else text


def error(message: str, location: Location, hint: str = "", source: str = "nigraan") -> Problem:
    return Problem(ERROR, message, location, hint, source)


def warning(message: str, location: Location, hint: str = "", source: str = "nigraan") -> Problem:
    return Problem(WARNING, message, location, hint, source)
