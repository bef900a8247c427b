"""The compiled row readers (store.rows) give exactly the rows and problems of the loop they
replaced (tests/rows_before.py, kept here only as the reference), on recorded and on messy,
generated documents of every recorded and programme form."""

from __future__ import annotations

import copy
import importlib.util
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import rows as new
from store.document import SubmissionDocument, SubmissionError, from_odata, from_openrosa_xml
from store.layout import plan_layout
from store.schema import parse_xform
from tests import rows_before as old
from tests.central_records import FINAL_PAGES, odata_rows


def _bench_module():
    """bench/normalise.py (the benchmark's generator of OData rows); bench/ is no package."""
    path = Path(__file__).parent.parent / "bench" / "normalise.py"
    spec = importlib.util.spec_from_file_location("bench_normalise", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench_module()

_PLANS: dict = {}


def _plans(schema):
    if id(schema) not in _PLANS:
        layout = plan_layout(schema, None, set()).layout
        _PLANS[id(schema)] = (old.RowPlan(schema, layout), new.RowPlan(schema, layout))
    return _PLANS[id(schema)]


def _same(doc: SubmissionDocument, plans, root_id: str) -> None:
    before, after = plans
    try:
        a = old.document_rows(doc, before, root_id)
    except Exception as exc:  # a nigraan bug (not_typed): then the same one
        with pytest.raises(type(exc)):
            new.document_rows(doc, after, root_id)
        return
    b = new.document_rows(doc, after, root_id)
    assert b.tables == a.tables
    assert [tuple(p.__dict__.values()) for p in b.problems] == [
        tuple(p.__dict__.values()) for p in a.problems
    ]
    assert b.columns == a.columns


@pytest.fixture(scope="module")
def recorded_forms(central_dir):
    return {
        path.stem: parse_xform(path.read_bytes())
        for path in sorted((central_dir / "forms").glob("*.xml"))
        if "encrypted" not in path.name
    }


@pytest.fixture(scope="module")
def programme_schemas(tmp_path_factory):
    from forms.build import build_forms
    from nigraan.config import load_config

    tmp = tmp_path_factory.mktemp("programme-rows")
    config = load_config(
        overrides={
            "instance_dir": tmp / "instance",
            "forms.lock_file": tmp / "built-versions.json",
            "forms.public_key_file": tmp / "keys" / "form-public.pem",
            "forms.validate": False,
        },
        environ={},
    )
    build_forms(config)
    return [parse_xform(p.read_bytes()) for p in sorted(config["forms.build_dir"].glob("*.xml"))]


def test_recorded_submissions_give_the_same_rows(central_dir, recorded_forms):
    schema = recorded_forms["rec_visit"]
    plans = _plans(schema)
    compared = 0
    for row in odata_rows(central_dir, "134-odata-submissions-expand-all.json") + odata_rows(
        central_dir, *FINAL_PAGES
    ):
        _same(from_odata(row, "rec_visit"), plans, row["__id"])
        compared += 1
    for path in sorted((central_dir / "submissions").glob("*.xml")):
        try:
            doc = from_openrosa_xml(path.read_bytes(), schema.repeat_paths)
        except SubmissionError:  # the refused ones are not documents at all
            continue
        _same(doc, plans, doc.instance_id or "uuid:x")
        compared += 1
    assert compared > 60


def test_benchmark_rows_of_every_programme_form_are_the_same(programme_schemas):
    assert len(programme_schemas) >= 5
    for schema in programme_schemas:
        plans = _plans(schema)
        for row in bench.odata_rows(schema, 40, seed=7):
            _same(from_odata(row, schema.form_id), plans, row["__id"])


_ODD = [
    None,
    "",
    "  ",
    " 12 ",
    "12",
    "-3.5",
    "1e400",
    "2026-02-30",
    "2026-11-28",
    "2026-11-28T10:00:00.000+05:00",
    "0001-01-01T00:00:00+05:00",
    "yes",
    "yes no maybe",
    "31.5 74.3 200 5",
    "95 200",
    "not a value",
    0,
    7,
    -(2**63),
    2**63,
    2**70,
    3.0,
    2.5,
    float("inf"),
    float("nan"),
    True,
    [],
    ["a"],
    {},
    {"x": "1"},
    {"type": "Point", "coordinates": [74.3, 31.5, 200], "properties": {"accuracy": 5}},
    {"type": "Point", "coordinates": [1]},
]


def _odd(rng: random.Random):
    return copy.deepcopy(rng.choice(_ODD))  # a fresh one: documents are changed in place


def _messy(schema, rng: random.Random) -> dict:
    """An OData-like document of `schema` with odd values, odd shapes and unknown names."""
    doc: dict = {}
    by_repeat: dict[str, list] = {}
    for f in schema.fields:
        by_repeat.setdefault(f.repeat, []).append(f)

    def fill(repeat: str, depth: int) -> dict:
        out: dict = {}
        for f in by_repeat.get(repeat, []):
            target = out
            *groups, name = f.local_path.split("/")
            for g in groups:
                nxt = target.setdefault(g, {})
                if type(nxt) is not dict:
                    break
                target = nxt
            else:
                choices = [c.name for c in f.choices]
                pool = _ODD + choices + [" ".join(choices[:2])]
                target[name] = copy.deepcopy(rng.choice(pool))
        for r in schema.repeats:
            if r.parent == repeat and depth < 3:
                local = r.path[len(repeat) + 1 :] if repeat else r.path
                *groups, name = local.split("/")
                target = out
                for g in groups:
                    target = target.setdefault(g, {})
                    if type(target) is not dict:
                        break
                else:
                    target[name] = [fill(r.path, depth + 1) for _ in range(rng.randint(0, 3))]
                    if rng.random() < 0.1 and target[name]:
                        target[name] = target[name][0]  # one instance, read as a group
        if rng.random() < 0.2:
            out["not_a_field"] = _odd(rng)
        for key in list(out):
            if type(out[key]) is dict and rng.random() < 0.05:
                out[key] = rng.choice(["text", [out[key]], [], 5])  # a group that is not one
        return out

    def sprinkle(value) -> None:  # names no version has, inside groups and repeats too
        if type(value) is list:
            for item in value:
                sprinkle(item)
        elif type(value) is dict:
            for item in list(value.values()):
                sprinkle(item)
            if rng.random() < 0.15:
                value[rng.choice(["stray", "__id", "x@odata.navigationLink"])] = _odd(rng)

    doc = fill("", 0)
    sprinkle(doc)
    return doc


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_messy_documents_give_the_same_rows_and_problems(recorded_forms, programme_schemas, seed):
    rng = random.Random(seed)
    for schema in [*recorded_forms.values(), *programme_schemas]:
        data = _messy(schema, rng)
        doc = SubmissionDocument(schema.form_id, schema.version, "uuid:1", data=data)
        _same(doc, _plans(schema), "uuid:1")
