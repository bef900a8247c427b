"""What a compiled XForm says about its data: fields, their kinds, repeats, labels and choices.

Works on any XForm pyxform produces (or Central serves), not only the programme's: the store
must take new and changed forms without code changes. Pure: bytes in, FormSchema out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import langcodes
from lxml import etree

from nigraan import safe_xml
from nigraan.errors import FormError

# The vocabulary is nigraan.xform's; its names stay importable from here (store.layout, rows).
from nigraan.xform import (  # noqa: F401
    ATTACHMENT,
    BIND_KINDS,
    DATE,
    DATETIME,
    DECIMAL,
    DEPRECATED_ID,
    GEOPOINT,
    GEOSHAPE,
    GEOTRACE,
    IDENTIFYING,
    INSTANCE_ID,
    INTEGER,
    JAVAROSA,
    NIGRAAN,
    NOTE,
    NS,
    RESTRICTED,
    SELECT_MULTIPLE,
    SELECT_ONE,
    SENSITIVITY_CLASSES,
    TEXT,
    TIME,
    XFORMS,
    XHTML,
    bind_type,
    is_note,
    local_name,
    public_key_submission,
    sensitivity_of,
    version_of,
)

_LANG_CODE = re.compile(r"\(([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\)\s*$")
_ITEXT_REF = re.compile(r"""jr:itext\(\s*['"]([^'"]+)['"]\s*\)""")
_INSTANCE_REF = re.compile(r"""instance\(\s*['"]([^'"]+)['"]\s*\)""")
# An itemset's value or label read straight from a child of each item: `label`,
# `jr:itext(itextId)`. Anything else (`translate(label)`, concat(...)) is an expression nigraan
# does not evaluate: the choices keep their names and get no labels.
_ITEM_CHILD = re.compile(r"^[A-Za-z_][\w.-]*$")
_ITEM_ITEXT = re.compile(r"^jr:itext\(\s*([A-Za-z_][\w.-]*)\s*\)$")


@dataclass(frozen=True)
class Choice:
    name: str
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Field:
    """One leaf of the instance. `path` is relative to the root element, '/'-separated."""

    path: str
    kind: str
    bind_type: str
    repeat: str  # path of the innermost repeat holding it; "" for the submission itself
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    choices: tuple[Choice, ...] = ()
    sensitivity: str | None = None
    calculated: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def local_path(self) -> str:
        """Path inside its own table (relative to its repeat)."""
        return self.path[len(self.repeat) + 1 :] if self.repeat else self.path

    @property
    def restricted(self) -> bool:
        return self.sensitivity == RESTRICTED


@dataclass(frozen=True)
class Repeat:
    path: str
    parent: str  # path of the enclosing repeat; "" for the submission
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FormSchema:
    form_id: str
    version: str
    title: str
    root: str  # name of the instance's root element (pyxform: "data")
    encrypted: bool
    fields: tuple[Field, ...]
    repeats: tuple[Repeat, ...]
    groups: frozenset[str] = frozenset()
    # The labels of groups that have one in the body ({path: {language key: label}}).
    group_labels: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, hash=False)
    languages: tuple[str, ...] = ()  # the keys of `labels`: a code ("en", "ur") or the name
    # Each language key and the language as the form wrote it ("English", "Urdu (ur)").
    language_names: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    key_bytes: int | None = None  # size of the form's RSA modulus: an envelope's wrapped key

    @property
    def identifying(self) -> bool:
        return any(f.sensitivity == IDENTIFYING for f in self.fields)

    @property
    def raw_only(self) -> bool:
        """Never flattened into typed tables: encrypted forms and forms holding identities."""
        return self.encrypted or self.identifying

    def field(self, path: str) -> Field | None:
        return self._by_path.get(path)

    # Cached on the instance (cached_property writes __dict__, which a frozen dataclass allows).
    @cached_property
    def _by_path(self) -> dict[str, Field]:
        return {f.path: f for f in self.fields}

    @cached_property
    def repeat_paths(self) -> frozenset[str]:
        return frozenset(r.path for r in self.repeats)

    @cached_property
    def attachment_paths(self) -> tuple[tuple[str, ...], ...]:
        """Paths (split on '/') of the fields whose value names an attached file."""
        return tuple(tuple(f.path.split("/")) for f in self.fields if f.kind == ATTACHMENT)


def _lang_key(lang: str) -> str:
    """'English (en)' -> 'en'; 'English' -> 'en', 'Urdu' -> 'ur' (a language's English name or
    its own name, as Collect matches a language without a code); other names stay as written."""
    match = _LANG_CODE.search(lang)
    if match:
        return match.group(1).lower()
    name = lang.strip()
    try:
        code = langcodes.find(name).language
    except (LookupError, ValueError):
        return lang
    # find() also takes near names ("Roman Urdu" -> Romany): only an exact name counts.
    known = {langcodes.Language.get(code).language_name(n).casefold() for n in ("en", code)}
    return code if code and name.casefold() in known else lang


def _lang_keys(model) -> dict[str, str]:
    """Each translation's lang attribute -> its key; two languages never share a key."""
    keys: dict[str, str] = {}
    for translation in model.iterfind("xf:itext/xf:translation", NS):
        lang = translation.get("lang", "default")
        if lang not in keys:
            key = _lang_key(lang)
            keys[lang] = key if key not in keys.values() else lang
    return keys


def _itext(model, lang_keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """itext id -> {language key: plain text} (the default form of each text)."""
    texts: dict[str, dict[str, str]] = {}
    for translation in model.iterfind("xf:itext/xf:translation", NS):
        lang = lang_keys[translation.get("lang", "default")]
        for text in translation.iterfind("xf:text", NS):
            values = text.findall("xf:value", NS)
            plain = [v for v in values if v.get("form") in (None, "long", "short")]
            chosen = plain[0] if plain else None
            if chosen is None:
                continue
            content = "".join(chosen.itertext()).strip()
            if content:
                texts.setdefault(text.get("id"), {})[lang] = content
    return texts


def _labels(element, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    label = element.find("xf:label", NS)
    if label is None:
        return {}
    ref = label.get("ref")
    if ref:
        match = _ITEXT_REF.search(ref)
        return dict(itext.get(match.group(1), {})) if match else {}
    content = "".join(label.itertext()).strip()
    return {"default": content} if content else {}


def _itemset_choices(itemset, model, itext) -> tuple[Choice, ...]:
    match = _INSTANCE_REF.search(itemset.get("nodeset", ""))
    if not match:
        return ()
    instance = model.find(f"xf:instance[@id='{match.group(1)}']", NS)
    if instance is None or instance.get("src"):  # external CSV/XML: choices unknown here
        return ()
    value = itemset.find("xf:value", NS)
    value_ref = (value.get("ref") or "name").strip() if value is not None else "name"
    if not _ITEM_CHILD.match(value_ref):
        return ()  # values computed by an expression: the choices cannot be listed here
    label = itemset.find("xf:label", NS)
    label_ref = (label.get("ref") or "label").strip() if label is not None else "label"
    by_itext = _ITEM_ITEXT.match(label_ref)
    label_child = by_itext.group(1) if by_itext else label_ref
    if not _ITEM_CHILD.match(label_child):
        label_child = None
    choices = []
    for item in instance.iter(f"{{{XFORMS}}}item"):
        name = item.findtext(f"xf:{value_ref}", namespaces=NS)
        if name is None:
            continue
        key = item.findtext(f"xf:{label_child}", namespaces=NS) if label_child else None
        plain = {"default": key} if key else {}
        labels = dict(itext.get(key or "", {})) if by_itext else plain
        choices.append(Choice(name, labels))
    return tuple(choices)


def _inline_choices(control, itext) -> tuple[Choice, ...]:
    return tuple(
        Choice(item.findtext("xf:value", default="", namespaces=NS), _labels(item, itext))
        for item in control.iterfind("xf:item", NS)
    )


def parse_xform(xform: bytes) -> FormSchema:
    """Read a compiled XForm into a FormSchema; a clear FormError if it is not an XForm."""
    try:
        tree = safe_xml.parse_xform(xform)
    except safe_xml.XMLSyntaxError as exc:
        raise FormError(
            f"The form definition is not well-formed XML: {exc}.",
            hint="Register the XForm that pyxform or Central produced, unchanged.",
        ) from exc
    model = tree.find("h:head/xf:model", NS)
    primary = None
    if model is not None:
        primary = next(
            (i for i in model.iterfind("xf:instance", NS) if i.get("id") is None and len(i)), None
        )
    if primary is None:
        raise FormError(
            "The form definition has no primary instance (h:head/model/instance).",
            hint="Register a compiled XForm (.xml), not an XLSForm or another document.",
        )
    root = primary[0]
    form_id = root.get("id")
    if not form_id:
        raise FormError(
            "The form's primary instance has no id attribute.",
            hint="Compile the form with pyxform; it sets id from the settings sheet.",
        )
    lang_keys = _lang_keys(model)
    itext = _itext(model, lang_keys)
    root_prefix = f"/{local_name(root.tag)}/"

    def rel(nodeset: str | None) -> str | None:
        if nodeset and nodeset.startswith(root_prefix):
            return nodeset[len(root_prefix) :]
        return None

    binds = {}
    for bind in model.iterfind("xf:bind", NS):
        path = rel(bind.get("nodeset"))
        if path:
            binds[path] = bind

    controls: dict[str, etree._Element] = {}
    body_repeats: set[str] = set()
    body = tree.find("h:body", NS)
    if body is not None:
        for element in body.iter():
            if not isinstance(element.tag, str):
                continue
            name = local_name(element.tag)
            if name == "repeat":
                path = rel(element.get("nodeset"))
                if path:
                    body_repeats.add(path)
            elif element.get("ref") and name not in ("label", "hint", "value", "itemset"):
                path = rel(element.get("ref"))
                if path:
                    controls[path] = element

    fields: list[Field] = []
    repeats: list[Repeat] = []
    groups: set[str] = set()
    labels_of_groups: dict[str, dict[str, str]] = {}

    def walk(element, prefix: str, repeat: str) -> None:
        seen: set[str] = set()
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = local_name(child.tag)
            if name in seen:  # pyxform writes a repeat's template and a first instance
                continue
            seen.add(name)
            path = f"{prefix}{name}"
            is_repeat = path in body_repeats or child.get(f"{{{JAVAROSA}}}template") is not None
            if is_repeat:
                control = controls.get(path)
                group_labels = _labels(control, itext) if control is not None else {}
                repeats.append(Repeat(path, repeat, group_labels))
                walk(child, path + "/", path)
            elif len(child):
                groups.add(path)
                if path in controls:
                    labels_of_groups[path] = _labels(controls[path], itext)
                walk(child, path + "/", repeat)
            else:
                fields.append(
                    _field(path, repeat, binds.get(path), controls.get(path), model, itext)
                )

    walk(root, "", "")
    return FormSchema(
        form_id=form_id,
        version=version_of(root) or "",
        title=(tree.findtext("h:head/h:title", default="", namespaces=NS) or "").strip(),
        root=local_name(root.tag),
        encrypted=public_key_submission(model) is not None,
        fields=tuple(fields),
        repeats=tuple(repeats),
        groups=frozenset(groups),
        group_labels=labels_of_groups,
        languages=tuple(lang_keys.values()),
        language_names={key: lang for lang, key in lang_keys.items()},
        key_bytes=_key_bytes(public_key_submission(model)),
    )


def _key_bytes(submission) -> int | None:
    """The byte size of an encrypted form's RSA modulus, which is also the size of every key
    Collect wraps with it (RSA-OAEP); None when the form is not encrypted or the key unreadable."""
    if submission is None:
        return None
    import base64

    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(submission.get("base64RsaPublicKey")))
    except ValueError:
        return None
    return (key.key_size + 7) // 8 if isinstance(key, rsa.RSAPublicKey) else None


def _field(path: str, repeat: str, bind, control, model, itext) -> Field:
    type_ = bind_type(bind)  # "xsd:int" -> "int"
    calculated = bind is not None and bind.get("calculate") is not None
    sensitivity = sensitivity_of(bind)
    control_name = local_name(control.tag) if control is not None else None
    kind = BIND_KINDS.get(type_, TEXT)
    choices: tuple[Choice, ...] = ()
    if path in ("meta/instanceID", "meta/deprecatedID"):
        kind = INSTANCE_ID if path.endswith("instanceID") else DEPRECATED_ID
    elif control_name in ("select1", "select") and kind == TEXT:
        kind = SELECT_ONE if control_name == "select1" else SELECT_MULTIPLE
        itemset = control.find("xf:itemset", NS)
        if itemset is not None:
            choices = _itemset_choices(itemset, model, itext)
        else:
            choices = _inline_choices(control, itext)
    elif is_note(bind, control):
        kind = NOTE
    return Field(
        path=path,
        kind=kind,
        bind_type=type_,
        repeat=repeat,
        labels=_labels(control, itext) if control is not None else {},
        choices=choices,
        sensitivity=sensitivity,
        calculated=calculated,
    )
