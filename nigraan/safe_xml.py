"""The one hardened XML parser: every XML nigraan reads with lxml goes through here.

libxml2 (C, fast on the upload path) with its dangerous features off, written once: no entity
expansion, no DTD loading or validation, no network, no huge trees. What differs between uses
is named: a submission drops comments and processing instructions and reads the ODK prefixes
Central accepts undeclared; an XForm is read as it was written. Parsers are kept one per
thread, as lxml parsers must not be shared between threads.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from nigraan.xform import ODK_PREFIXES

XMLSyntaxError = etree.XMLSyntaxError

_HARDENED = {
    "resolve_entities": False,
    "load_dtd": False,
    "dtd_validation": False,
    "no_network": True,
    "huge_tree": False,
}
_SUBMISSION = {"remove_comments": True, "remove_pis": True}
_parsers = threading.local()


def _parser(kind: str, **settings) -> etree.XMLParser:
    parser = getattr(_parsers, kind, None)
    if parser is None:
        parser = etree.XMLParser(**_HARDENED, **settings)
        setattr(_parsers, kind, parser)
    return parser


def declares_dtd(root) -> bool:
    """Does the document declare a DTD (internal or external)? Collect never sends one."""
    docinfo = root.getroottree().docinfo
    return (
        docinfo.internalDTD is not None or docinfo.externalDTD is not None or bool(docinfo.doctype)
    )


def parse_xform(xml: bytes):
    """A compiled XForm (pyxform's output, or a form Central serves) -> its root element.

    Raises XMLSyntaxError when it is not well-formed."""
    return etree.fromstring(xml, _parser("xform"))


_ROOT_TAG = re.compile(rb"<[A-Za-z_][\w.:-]*")
_PREFIXES = {p.encode(): uri.encode() for p, uri in ODK_PREFIXES.items()}


def with_odk_prefixes(xml: bytes) -> bytes | None:
    """The XML with the ODK prefixes its root start tag does not declare declared there, or
    None when there is no root start tag or nothing to add."""
    found = _ROOT_TAG.search(xml)
    if found is None:
        return None
    tag_end = xml.find(b">", found.end())
    start_tag = xml[found.start() : tag_end if tag_end >= 0 else len(xml)]
    missing = [p for p in _PREFIXES if b"xmlns:" + p + b"=" not in start_tag]
    if not missing:
        return None
    declarations = b"".join(b' xmlns:%s="%s"' % (p, _PREFIXES[p]) for p in missing)
    return xml[: found.end()] + declarations + xml[found.end() :]


def parse_submission(xml: bytes):
    """Submission instance XML -> its root element, comments and processing instructions
    dropped; an undeclared orx:/jr:/odk: prefix is read as Central reads it.

    Raises the first XMLSyntaxError when it is not well-formed (with or without the prefixes).
    """
    parser = _parser("submission", **_SUBMISSION)
    try:
        return etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        # An undeclared ODK prefix only. Anything else that is not well formed fails the
        # second parse too and is refused with the first error.
        retry = with_odk_prefixes(xml) if "Namespace prefix" in str(exc) else None
        if retry is not None:
            try:
                return etree.fromstring(retry, parser)
            except etree.XMLSyntaxError:
                pass
        raise
