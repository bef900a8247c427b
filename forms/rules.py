"""The project's own rules, which pyxform does not know.

Each rule is a pure function over a parsed workbook (or a compiled XForm) returning Problems
that name the file, sheet, row and column and say how to fix it.
"""

from __future__ import annotations

import re

from forms.compile import CompiledForm
from forms.problems import Location, Problem, error
from forms.reference import CHOICE_NAME, FROM_FILE, LANGUAGES, ReferenceList
from forms.workbook import Row, Workbook
from nigraan.xform import (
    IDENTIFYING,
    IDENTITY_FORM,
    NAMESPACE_DECLARATION,
    NS,
    SENSITIVITY_ATTRIBUTE,
    SENSITIVITY_CLASSES,
    SENSITIVITY_COLUMN,
    SURVIVOR_FORMS,
    XFORMS,
)

DEFAULT_LANGUAGE = LANGUAGES[0]
TEXT_COLUMNS = ("label", "hint", "guidance_hint", "required_message", "constraint_message")
VERSION_FORMAT = re.compile(r"^\d{10}$")
NO_DATA_TYPES = re.compile(r"^(begin|end)[ _](group|repeat)$|^note$")
NO_LABEL_TYPES = re.compile(
    r"^(calculate|start|end|today|deviceid|username|phonenumber|subscriberid|simserial|email"
    r"|audit|start-geopoint|background-audio|csv-external|xml-external|end[ _](group|repeat))$"
)

# Identifier detection: the words a field name uses for a person's identity.
IDENTIFIER_TOKENS = {
    "cnic": "CNIC",
    "nic": "CNIC",
    "nicop": "CNIC",
    "bform": "CNIC (B-form)",
    "phone": "phone number",
    "mobile": "phone number",
    "telephone": "phone number",
    "tel": "phone number",
    "whatsapp": "phone number",
    "landline": "phone number",
    "address": "address",
    "email": "e-mail address",
    "surname": "name",
    "fullname": "name",
    "firstname": "name",
    "lastname": "name",
}
NOT_A_PERSON = {
    "facility",
    "station",
    "venue",
    "event",
    "form",
    "jail",
    "unit",
    "place",
    "org",
    "organisation",
    "organization",
    "file",
    "course",
    "module",
    "court",
    "hospital",
    "school",
    "institution",
    "village",
    "area",
    "district",
    "city",
    "provider",
    "partner",
    "agency",
    "list",
    "instance",
    "ngo",
    "centre",
    "center",
    "shelter",
}
IDENTIFIER_PATTERNS = (
    (re.compile(r"(\[0-9\]|\\d)\{5\}-"), "a CNIC pattern"),
    (re.compile(r"03\[0-9\]|\^0?3\\d|\+92|\^03"), "a phone number pattern"),
)
MOVE_HINT = (
    "Names, CNIC, phone numbers and addresses may only be collected in identity_register "
    "(encrypted). Remove the field here and refer to the person by code."
)


def _data_rows(workbook: Workbook) -> list[Row]:
    survey = workbook.sheet("survey")
    return [
        row
        for row in (survey.rows if survey else ())
        if row.get("type") and not NO_DATA_TYPES.match(row.get("type").lower())
    ]


def check_structure(workbook: Workbook) -> list[Problem]:
    """Sheets present, settings complete, form_id matches the file name."""
    problems = []
    for name in ("survey", "settings"):
        if workbook.sheet(name) is None:
            problems.append(
                error(f"no '{name}' sheet", Location(workbook.file), f"Add a sheet named '{name}'.")
            )
    settings = workbook.settings
    if workbook.sheet("settings") is None:
        return problems

    def at(column: str) -> Location:
        return workbook.where(
            "settings",
            workbook.sheet("settings").rows[0] if workbook.sheet("settings").rows else None,
            column,
        )

    form_id = settings.get("form_id", "")
    if form_id != workbook.path.stem:
        problems.append(
            error(
                f"form_id is '{form_id}' but the file is {workbook.file}",
                at("form_id"),
                f"Name the file {form_id}.xlsx or set form_id to '{workbook.path.stem}'.",
            )
        )
    version = settings.get("version", "")
    if not VERSION_FORMAT.match(version):
        problems.append(
            error(
                f"version '{version}' is not YYYYMMDDNN",
                at("version"),
                "Use the date of the change and a two-digit counter, e.g. 2026112801.",
            )
        )
    if settings.get("default_language") != DEFAULT_LANGUAGE:
        problems.append(
            error(
                f"default_language is '{settings.get('default_language', '')}'",
                at("default_language"),
                f"Set it to '{DEFAULT_LANGUAGE}'.",
            )
        )
    survey = workbook.sheet("survey")
    if (
        survey
        and SENSITIVITY_COLUMN in survey.headers
        and NAMESPACE_DECLARATION not in settings.get("namespaces", "")
    ):
        problems.append(
            error(
                "the survey uses the sensitivity column but the nigraan namespace is not declared",
                at("namespaces"),
                f"Put {NAMESPACE_DECLARATION} in the settings column 'namespaces'.",
            )
        )
    return problems


def check_languages(workbook: Workbook) -> list[Problem]:
    """English and Urdu present and non-empty wherever there is text; messages where needed."""
    problems: list[Problem] = []
    for sheet_name in ("survey", "choices"):
        sheet = workbook.sheet(sheet_name)
        if sheet is None:
            continue
        for base in TEXT_COLUMNS:
            columns = sheet.columns(base)
            if base in columns:
                problems.append(
                    error(
                        f"column '{base}' has no language",
                        workbook.where(sheet_name, None, base),
                        f"Rename it '{base}::{DEFAULT_LANGUAGE}' and add '{base}::{LANGUAGES[1]}'.",
                    )
                )
            for column in columns:
                lang = column.partition("::")[2]
                if lang and lang not in LANGUAGES:
                    problems.append(
                        error(
                            f"language '{lang}' is not one of {', '.join(LANGUAGES)}",
                            workbook.where(sheet_name, None, column),
                            "Spell the languages exactly 'English (en)' and 'Urdu (ur)'.",
                        )
                    )
        for row in sheet.rows:
            needs = set()
            row_type = row.get("type").lower()
            if sheet_name == "choices" or (row_type and not NO_LABEL_TYPES.match(row_type)):
                needs.add("label")
            if row.get("required").lower() in {"yes", "true", "true()"}:
                needs.add("required_message")
            if row.get("constraint"):
                needs.add("constraint_message")
            for base in TEXT_COLUMNS:
                texts = {lang: row.get(f"{base}::{lang}") for lang in LANGUAGES}
                if not any(texts.values()) and base not in needs:
                    continue
                for lang, text in texts.items():
                    if not text:
                        problems.append(
                            error(
                                f"no {lang} text for {base}"
                                + (f" of '{row.get('name')}'" if row.get("name") else ""),
                                workbook.where(sheet_name, row, f"{base}::{lang}"),
                                f"Write the {base.replace('_', ' ')} in {lang}.",
                            )
                        )
    return problems


def check_choice_names(workbook: Workbook) -> list[Problem]:
    sheet = workbook.sheet("choices")
    problems = []
    for row in sheet.rows if sheet else ():
        name = row.get("name")
        if not CHOICE_NAME.match(name):
            problems.append(
                error(
                    f"choice name '{name}' in list '{row.get('list_name')}' "
                    "is not ASCII snake_case",
                    workbook.where("choices", row, "name"),
                    "Use lower-case letters, digits and underscores; exports use the name.",
                )
            )
    return problems


def check_reference_use(workbook: Workbook, lists: dict[str, ReferenceList]) -> list[Problem]:
    """Every `select_*_from_file` names a list we have, and no choice list shadows it."""
    survey = workbook.sheet("survey")
    choices = workbook.sheet("choices")
    own_lists = {row.get("list_name") for row in (choices.rows if choices else ())}
    problems = []
    for row in survey.rows if survey else ():
        match = FROM_FILE.match(row.get("type"))
        if not match:
            continue
        file = match.group(2)
        if file.endswith(".csv") and file not in lists:
            problems.append(
                error(
                    f"reference list '{file}' does not exist",
                    workbook.where("survey", row, "type"),
                    f"Use one of: {', '.join(sorted(lists)) or '(none)'}; "
                    f"or add forms/reference/{file}.",
                )
            )
        elif file in lists and lists[file].list_name in own_lists:
            problems.append(
                error(
                    f"the choices sheet has a list '{lists[file].list_name}' too",
                    workbook.where("survey", row, "type"),
                    "Rename the choice list; the reference list is written in under its file name.",
                )
            )
    return problems


def check_sensitivity(workbook: Workbook) -> list[Problem]:
    """Survivor forms: every data field has a known class; `identifying` only in the register."""
    form_id = workbook.path.stem
    problems = []
    for row in _data_rows(workbook):
        value = row.get(SENSITIVITY_COLUMN)
        where = workbook.where("survey", row, SENSITIVITY_COLUMN)
        name = row.get("name")
        if not value:
            if form_id in SURVIVOR_FORMS:
                problems.append(
                    error(
                        f"field '{name}' has no sensitivity class",
                        where,
                        f"Survivor forms mark every field: one of {', '.join(SENSITIVITY_CLASSES)} "
                        "(see forms/README.md).",
                    )
                )
        elif value not in SENSITIVITY_CLASSES:
            problems.append(
                error(
                    f"field '{name}' has unknown sensitivity class '{value}'",
                    where,
                    f"Use one of {', '.join(SENSITIVITY_CLASSES)}.",
                )
            )
        elif value == IDENTIFYING and form_id != IDENTITY_FORM:
            problems.append(error(f"field '{name}' is marked identifying", where, MOVE_HINT))
    return problems


def identifier_kind(name: str, constraint: str) -> str | None:
    """What identifier a field name or constraint looks like, if any."""
    tokens = [t for t in re.split(r"[_\W]+", name.lower()) if t]
    for token in tokens:
        if token in IDENTIFIER_TOKENS:
            return IDENTIFIER_TOKENS[token]
    if "name" in tokens and not NOT_A_PERSON.intersection(tokens):
        return "name"
    for pattern, kind in IDENTIFIER_PATTERNS:
        if pattern.search(constraint):
            return kind
    return None


def check_identifiers(workbook: Workbook) -> list[Problem]:
    """Outside identity_register, nothing that looks like a name, CNIC, phone or address."""
    if workbook.path.stem == IDENTITY_FORM:
        return []
    problems = []
    for row in _data_rows(workbook):
        kind = identifier_kind(row.get("name"), row.get("constraint"))
        if kind:
            column = "constraint" if kind.endswith("pattern") else "name"
            problems.append(
                error(
                    f"field '{row.get('name')}' looks like a direct identifier ({kind})",
                    workbook.where("survey", row, column),
                    MOVE_HINT,
                )
            )
    return problems


def check_encryption(workbook: Workbook) -> list[Problem]:
    """The identity register, which holds identifying fields, must be encrypted.

    (Elsewhere an identifying field is itself the error; see check_sensitivity.)
    """
    if workbook.path.stem != IDENTITY_FORM:
        return []
    identifying = [
        row for row in _data_rows(workbook) if row.get(SENSITIVITY_COLUMN) == IDENTIFYING
    ]
    if not identifying or "public_key" in workbook.settings:
        return []
    return [
        error(
            "the form holds identifying fields but is not encrypted",
            workbook.where("settings", None, "public_key"),
            "Add a 'public_key' column to settings with the value 'from-config'.",
        )
    ]


def check_compiled_translations(compiled: CompiledForm, file: str) -> list[Problem]:
    """Every itext id has non-empty text in every language of the compiled XForm."""
    tree = compiled.tree()
    translations = tree.findall("h:head/xf:model/xf:itext/xf:translation", NS)
    langs = [t.get("lang") for t in translations]
    problems = []
    if sorted(langs) != sorted(LANGUAGES):
        problems.append(
            error(
                f"the compiled form has languages {langs or 'none'}",
                Location(file),
                f"Give every label both {' and '.join(LANGUAGES)} columns.",
            )
        )
    texts: dict[str, dict[str, str]] = {}
    for translation in translations:
        for text in translation.findall("xf:text", NS):
            value = "".join("".join(v.itertext()) for v in text.findall("xf:value", NS)).strip()
            texts.setdefault(text.get("id"), {})[translation.get("lang")] = value
    for text_id, by_lang in texts.items():
        for lang in langs:
            if not by_lang.get(lang):
                problems.append(
                    error(
                        f"itext '{text_id}' has no {lang} text in the compiled form",
                        Location(file),
                        "Fill the matching label, hint or message column (or the reference list).",
                    )
                )
    return problems


WORKBOOK_RULES = (
    check_structure,
    check_languages,
    check_choice_names,
    check_sensitivity,
    check_identifiers,
    check_encryption,
)


def check_workbook(workbook: Workbook, lists: dict[str, ReferenceList]) -> list[Problem]:
    problems = [p for rule in WORKBOOK_RULES for p in rule(workbook)]
    return problems + check_reference_use(workbook, lists)


def xform_sensitivity(compiled: CompiledForm) -> dict[str, str]:
    """Field path -> sensitivity class, as the store will read it from the XForm."""
    return {
        bind.get("nodeset"): bind.get(SENSITIVITY_ATTRIBUTE)
        for bind in compiled.tree().iter(f"{{{XFORMS}}}bind")
        if bind.get(SENSITIVITY_ATTRIBUTE)
    }
