"""Compile one XLSForm with pyxform: reference lists written in, public key filled in.

ODK Validate runs on the result separately (`validate_xform`).
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from lxml import etree
from pyxform.errors import PyXFormError
from pyxform.validators.odk_validate import ODKValidateError, check_xform
from pyxform.xls2xform import convert

from forms.problems import Location, Problem, error, warning
from forms.reference import ReferenceList, inject_lists
from nigraan.safe_xml import parse_xform
from nigraan.xform import NS, public_key_submission

KEY_FROM_CONFIG = "from-config"
MEDIA_REF = re.compile(r"jr://(?:file|file-csv|images|audio|video)/([^\s\"'<>)]+)")


@dataclass
class CompiledForm:
    form_id: str
    version: str
    title: str
    xform: bytes
    encrypted: bool
    media: list[str] = field(default_factory=list)
    lists_written_in: list[str] = field(default_factory=list)
    _tree: etree._Element | None = field(default=None, repr=False, compare=False)

    def tree(self) -> etree._Element:
        """The parsed XForm, parsed once; read it, do not change it."""
        if self._tree is None:
            self._tree = parse_xform(self.xform)
        return self._tree


@dataclass
class CompileResult:
    compiled: CompiledForm | None
    problems: list[Problem]


def _set_public_key(book, public_key: str | None, file: str) -> tuple[bool, list[Problem]]:
    """Fill `public_key = from-config`; returns (encrypted, problems)."""
    sheets = {ws.title.strip().lower(): ws for ws in book.worksheets}
    settings = sheets.get("settings")
    if settings is None:
        return False, []
    headers = [str(c.value).strip() if c.value is not None else "" for c in settings[1]]
    if "public_key" not in headers:
        return False, []
    cell = settings.cell(row=2, column=headers.index("public_key") + 1)
    value = str(cell.value or "").strip()
    if value != KEY_FROM_CONFIG:
        where = Location(file, "settings", 2, "public_key")
        return bool(value), [
            error(
                f"public_key is '{value[:20]}…'; keys are not kept in form files",
                where,
                f"Write '{KEY_FROM_CONFIG}' there; the build fills in the configured key.",
            )
        ]
    if public_key is None:
        return True, []
    cell.value = public_key
    return True, []


def _pyxform_location(file: str, message: str) -> Location:
    match = re.search(r"\[row\s*:\s*(\d+)\]", message)
    sheet = re.search(r"'(survey|choices|settings|entities)'", message)
    return Location(file, sheet.group(1) if sheet else None, int(match.group(1)) if match else None)


def compile_form(
    path: Path,
    lists: dict[str, ReferenceList],
    public_key: str | None,
    missing_key_hint: str = "",
) -> CompileResult:
    """Turn one .xlsx into XForm bytes; every failure comes back as a Problem, never raised.

    ODK Validate runs separately (`validate_xform`): pyxform and openpyxl are not safe to run
    in several threads at once, while the Java validator is a plain subprocess.
    """
    file = path.name
    try:
        book = openpyxl.load_workbook(path)
    except Exception as exc:  # openpyxl raises many types for broken files
        return CompileResult(
            None,
            [
                error(
                    f"cannot be opened as an .xlsx workbook ({exc})",
                    Location(file),
                    "Save it again from Excel or LibreOffice as .xlsx.",
                )
            ],
        )
    written_in = inject_lists(book, lists)
    encrypted, problems = _set_public_key(book, public_key, file)
    if encrypted and public_key is None:
        problems.append(
            error(
                "this form must be encrypted and no public key is configured; it was not compiled",
                Location(file, "settings", 2, "public_key"),
                missing_key_hint,
            )
        )
    if problems:
        return CompileResult(None, problems)

    buffer = io.BytesIO()
    book.save(buffer)
    pyxform_warnings: list[str] = []
    try:
        result = convert(
            buffer.getvalue(),
            warnings=pyxform_warnings,
            validate=False,
            pretty_print=True,
            file_type=".xlsx",
        )
    except PyXFormError as exc:
        message = str(exc).strip()
        return CompileResult(
            None,
            [
                error(
                    message,
                    _pyxform_location(file, message),
                    "See the XLSForm spec at xlsform.org.",
                    source="pyxform",
                )
            ],
        )
    problems = [
        warning(
            w.strip(),
            _pyxform_location(file, w),
            source="pyxform",
        )
        for w in dict.fromkeys(pyxform_warnings)
        if w.strip()
    ]
    xform = result.xform.encode("utf-8")
    tree = parse_xform(xform)
    instance = tree.find("h:head/xf:model/xf:instance/*", NS)
    title = tree.findtext("h:head/h:title", default="", namespaces=NS)
    compiled = CompiledForm(
        form_id=instance.get("id", path.stem),
        version=instance.get("version", ""),
        title=title,
        xform=xform,
        encrypted=public_key_submission(tree.find("h:head/xf:model", NS)) is not None,
        media=sorted(set(MEDIA_REF.findall(result.xform))),
        lists_written_in=written_in,
        _tree=tree,
    )
    return CompileResult(compiled, problems)


def validate_xform(compiled: CompiledForm, file: str) -> list[Problem]:
    """Run ODK Validate (JavaRosa, the engine inside ODK Collect) on a compiled form."""
    with tempfile.TemporaryDirectory(prefix="nigraan-validate-") as tmp:
        path = Path(tmp) / f"{compiled.form_id}.xml"
        path.write_bytes(compiled.xform)
        try:
            messages = check_xform(str(path))
        except ODKValidateError as exc:
            return [
                error(
                    str(exc).strip(),
                    Location(file),
                    "Fix the expression or field ODK Validate names.",
                    source="odk-validate",
                )
            ]
        except OSError as exc:  # no Java
            return [
                error(
                    str(exc),
                    Location(file),
                    "Install Java (apt-get install default-jre-headless) or pass --no-validate.",
                    source="odk-validate",
                )
            ]
    return [
        warning(m.strip(), Location(file), source="odk-validate") for m in messages if m.strip()
    ]
