"""Evaluate a compiled XForm's calculations on chosen answers, for tests of form logic.

A small stand-in for JavaRosa's evaluation: lxml's XPath 1.0 with the ODK functions the
programme's forms use (if, selected, count-selected, decimal-date-time, round, coalesce,
instance(), today(), now()). Enough to check that a score or a 24-hour flag comes out right;
ODK Validate (real JavaRosa) checks that the expressions parse and run in Collect.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re

from lxml import etree

XF = "http://www.w3.org/2002/xforms"
HOLDER = "secondary-instances"
H = "http://www.w3.org/1999/xhtml"


def _strip(element: etree._Element) -> etree._Element:
    element = copy.deepcopy(element)
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
        for key in list(node.attrib):
            if "}" in key:
                del node.attrib[key]
    etree.cleanup_namespaces(element)
    return element


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(v.text or "" if hasattr(v, "text") else str(v) for v in value[:1])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(round(value, 10))
    return "" if value is None else str(value)


def _number(value) -> float:
    text = _text(value).strip()
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _decimal_date_time(value) -> float:
    text = _text(value).strip()
    if not text:
        return float("nan")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return _number(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (moment - epoch).total_seconds() / 86400


class FormEvaluator:
    """Holds one filled-in instance of a compiled form."""

    def __init__(self, xform: bytes, today: str = "2026-11-28"):
        tree = etree.fromstring(xform)
        model = tree.find(f"{{{H}}}head/{{{XF}}}model")
        instances = model.findall(f"{{{XF}}}instance")
        self.data = _strip(instances[0][0])
        # Secondary instances live inside the main document, so that an absolute path such as
        # /data/district inside instance('x')/root/item[...] still means the form's own field.
        holder = etree.SubElement(self.data, HOLDER)
        self.secondary = {}
        for inst in instances[1:]:
            if inst.get("id") and len(inst):
                wrapper = etree.SubElement(holder, "wrapper")
                wrapper.append(_strip(inst[0]))
                self.secondary[inst.get("id")] = wrapper
        self.binds = [
            (b.get("nodeset"), b.get("calculate"))
            for b in model.findall(f"{{{XF}}}bind")
            if b.get("calculate")
        ]
        self.relevance = {
            b.get("nodeset"): b.get("relevant")
            for b in model.findall(f"{{{XF}}}bind")
            if b.get("relevant")
        }
        self.today = today
        self.extensions = {
            (None, "if"): lambda _c, cond, a, b: a if _truth(cond) else b,
            (None, "selected"): lambda _c, lst, v: _text(v) in _text(lst).split(),
            (None, "count-selected"): lambda _c, lst: float(len(_text(lst).split())),
            (None, "decimal-date-time"): lambda _c, v: _decimal_date_time(v),
            (None, "odk-round"): lambda _c, v, n=0: round(_number(v), int(_number(n))),
            (None, "format-date"): lambda _c, v, fmt: _format_date(v, fmt),
            (None, "coalesce"): lambda _c, a, b: _text(a) or _text(b),
            (None, "today"): lambda _c: self.today,
            (None, "now"): lambda _c: self.today + "T12:00:00+05:00",
            (None, "instance"): lambda _c, name: [self.secondary[_text(name)]],
            (None, "odk-position"): lambda _c, nodes: float(
                1 + sum(1 for _ in nodes[0].itersiblings(nodes[0].tag, preceding=True))
            ),
            (None, "int"): lambda _c, v: float(math.trunc(_number(v))),
            (None, "string-length"): lambda _c, v: float(len(_text(v))),
        }

    def node(self, name: str) -> etree._Element:
        """The (first) field with this name anywhere in the instance."""
        found = self.data.xpath(f"//{name}[not(ancestor::{HOLDER})]")
        if not found:
            raise KeyError(f"no field named {name!r} in the form")
        return found[0]

    def set(self, **answers) -> FormEvaluator:
        for name, value in answers.items():
            self.node(name).text = "" if value is None else str(value)
        return self

    def calculate(self, passes: int = 4) -> FormEvaluator:
        """Run every calculate bind, in order, a few times so chains settle."""
        for _ in range(passes):
            for nodeset, expr in self.binds:
                targets = self.data.getroottree().xpath(nodeset)
                if not targets:
                    continue
                targets[0].text = _text(self.evaluate(expr, targets[0]))
        return self

    def evaluate(self, expr: str, context=None):
        """One XPath expression, in the context of a field (default: the instance root)."""
        # lxml's built-in round() takes one argument; ODK's takes two.
        expr = re.sub(r"(?<![\w-])round\(", "odk-round(", expr)
        expr = re.sub(r"(?<![\w-])position\((?!\s*\))", "odk-position(", expr)
        return etree.XPath(expr, extensions=self.extensions)(
            self.data if context is None else context
        )

    def relevant(self, name: str) -> bool:
        """Whether a field or group's own relevant expression holds now."""
        node = self.node(name)
        path = node.getroottree().getpath(node)
        expr = self.relevance.get(path)
        return True if expr is None else _truth(self.evaluate(expr, node))

    def get(self, name: str) -> str:
        return self.node(name).text or ""


def _truth(value) -> bool:
    if isinstance(value, list):
        return bool(value)
    if isinstance(value, float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return bool(value)
    return bool(value)


def _format_date(value, fmt) -> str:
    moment = _text(value).strip()
    if not moment:
        return ""
    parsed = dt.datetime.fromisoformat(moment)
    return parsed.strftime(_text(fmt))
