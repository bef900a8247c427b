"""The XForm vocabulary `forms` and `store` share: namespaces, field kinds, sensitivity, notes.

Written once here so the form checks and the store read a compiled XForm by the same words.
Pure: names and small functions over lxml elements.
"""

from __future__ import annotations

from lxml import etree

XFORMS = "http://www.w3.org/2002/xforms"  # the model, binds and body controls
XHTML = "http://www.w3.org/1999/xhtml"  # h:html, h:head, h:title, h:body
JAVAROSA = "http://openrosa.org/javarosa"  # jr: itext, preload, template
OPENROSA_XFORMS = "http://openrosa.org/xforms"  # orx: meta, version
ODK_XFORMS = "http://www.opendatakit.org/xforms"  # odk: Collect's extensions

# The columns ODK Central's CSV export puts after a form's own, in its order (shared/central
# README facts 31, 34): the export writes them, the import of Central's decrypted export skips them.
CENTRAL_CSV_TRAILING_META = (
    "SubmitterID",
    "SubmitterName",
    "AttachmentsPresent",
    "AttachmentsExpected",
    "Status",
    "ReviewState",
    "DeviceID",
    "Edits",
    "FormVersion",
)
ODK_SUBMISSIONS = "http://opendatakit.org/submissions"  # the encrypted submission envelope
NIGRAAN = "urn:nigraan:xforms"  # nigraan's bind attributes (the sensitivity class)

# Prefixes for lxml's find/findall/xpath over a compiled XForm.
NS = {"h": XHTML, "xf": XFORMS, "jr": JAVAROSA}

# Prefixes ODK Central accepts undeclared in a submission (its own test data uses `orx:`
# without declaring it); store.document reads them as Central does.
ODK_PREFIXES = {"orx": OPENROSA_XFORMS, "jr": JAVAROSA, "odk": ODK_XFORMS}

# Field kinds, in XLSForm's vocabulary. Each maps to one or more typed columns (store.layout).
TEXT, INTEGER, DECIMAL, DATE, DATETIME, TIME = (
    "text",
    "integer",
    "decimal",
    "date",
    "dateTime",
    "time",
)
SELECT_ONE, SELECT_MULTIPLE, GEOPOINT, GEOTRACE, GEOSHAPE = (
    "select_one",
    "select_multiple",
    "geopoint",
    "geotrace",
    "geoshape",
)
ATTACHMENT, NOTE, INSTANCE_ID, DEPRECATED_ID = "attachment", "note", "instanceID", "deprecatedID"

# A bind's type (prefix dropped) -> the field kind; any other type holds text.
BIND_KINDS = {
    "int": INTEGER,
    "integer": INTEGER,
    "long": INTEGER,
    "short": INTEGER,
    "decimal": DECIMAL,
    "double": DECIMAL,
    "float": DECIMAL,
    "date": DATE,
    "dateTime": DATETIME,
    "time": TIME,
    "geopoint": GEOPOINT,
    "geotrace": GEOTRACE,
    "geoshape": GEOSHAPE,
    "binary": ATTACHMENT,
}

# The survey column that writes the class, and the attribute it becomes on the field's bind.
SENSITIVITY_COLUMN = "bind::nigraan:sensitivity"
SENSITIVITY_ATTRIBUTE = f"{{{NIGRAAN}}}sensitivity"
# The settings sheet's `namespaces` must declare nigraan's namespace for the column to compile.
NAMESPACE_DECLARATION = f'nigraan="{NIGRAAN}"'
IDENTIFYING, PSEUDONYM, RESTRICTED, SENSITIVE, GENERAL = (
    "identifying",
    "pseudonym",
    "restricted",
    "sensitive",
    "general",
)
SENSITIVITY_CLASSES = (IDENTIFYING, PSEUDONYM, RESTRICTED, SENSITIVE, GENERAL)


def local_name(tag) -> str:
    """An element's or attribute's name without its namespace; "" for comments and PIs."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def version_of(root) -> str | None:
    """The version attribute of an instance root, in whatever namespace (`version`,
    `orx:version`): the first one, as ODK Central reads forms and submissions."""
    return next(
        (value for name, value in root.attrib.items() if local_name(name) == "version"), None
    )


def bind_type(bind) -> str:
    """A bind's type without its prefix ("xsd:int" -> "int"); "string" when it has none."""
    raw = (bind.get("type") if bind is not None else None) or "string"
    return raw.split(":", 1)[-1]


def sensitivity_of(bind) -> str | None:
    """The sensitivity class a bind carries (nigraan:sensitivity), if any."""
    return bind.get(SENSITIVITY_ATTRIBUTE) if bind is not None else None


def public_key_submission(model):
    """The model's <submission> that carries the form's public key; None when the form is not
    encrypted (a <submission> with only an action is a custom server, not encryption)."""
    return model.find("xf:submission[@base64RsaPublicKey]", NS) if model is not None else None


def is_note(bind, control) -> bool:
    """Is this field an XLSForm note: text shown, nothing stored?

    pyxform writes a note as a read-only, uncalculated, unpreloaded text input.
    """
    return (
        control is not None
        and local_name(control.tag) == "input"
        and bind is not None
        and bind.get("readonly") == "true()"
        and bind.get("calculate") is None
        and bind.get(f"{{{JAVAROSA}}}preload") is None
        and bind_type(bind) not in BIND_KINDS
    )


# The programme's forms that hold survivor data: written once here for the form rules (forms/),
# the web app's access and audit (server/web/), and anything else that must know them.
IDENTITY_FORM = "identity_register"
SURVIVOR_FORMS = frozenset(
    {IDENTITY_FORM, "survivor_registration", "survivor_intake", "service_contact", "case_closure"}
)
