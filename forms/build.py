"""Check and build every form: project rules, pyxform, ODK Validate, then write the XForms.

`check_forms` writes nothing; `build_forms` writes each form that has no errors into the build
folder (XForm plus media), records its version, and leaves a failed form's previous build alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from forms.compile import CompiledForm, compile_form, validate_xform
from forms.problems import ERROR, Location, Problem, error
from forms.reference import ReferenceList, check_reference_list, lists_used, load_reference_lists
from forms.rules import check_compiled_translations, check_workbook, xform_sensitivity
from forms.versions import check_version, read_lock, write_lock
from forms.workbook import Workbook, fingerprint, read_workbook
from nigraan.config import Config
from nigraan.errors import FormError, KeyFileError
from nigraan.keys import CREATE_HINT, public_key_for_form
from nigraan.xform import NS, XFORMS, is_note


@dataclass
class FormReport:
    form_id: str
    path: Path
    problems: list[Problem] = field(default_factory=list)
    compiled: CompiledForm | None = None
    fingerprint: str = ""
    version: str = ""
    field_count: int = 0
    written: bool = False

    @property
    def ok(self) -> bool:
        return self.compiled is not None and not any(p.level == ERROR for p in self.problems)


@dataclass
class BuildReport:
    forms: list[FormReport]
    list_problems: list[Problem]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.forms) and not any(
            p.level == ERROR for p in self.list_problems
        )


def _form_paths(source_dir: Path, form_ids: list[str] | None) -> list[Path]:
    if not source_dir.is_dir():
        raise FormError(
            f"The forms folder {source_dir} does not exist.",
            hint="Set NIGRAAN_FORMS_SOURCE_DIR (or forms.source_dir) to the folder of .xlsx files.",
        )
    paths = sorted(p for p in source_dir.glob("*.xlsx") if not p.name.startswith("~$"))
    if form_ids:
        known = {p.stem: p for p in paths}
        unknown = [f for f in form_ids if f not in known]
        if unknown:
            raise FormError(
                f"No form named {', '.join(unknown)} in {source_dir}.",
                hint=f"Known forms: {', '.join(known) or '(none)'}.",
            )
        paths = [known[f] for f in form_ids]
    return paths


def _public_key(config: Config) -> tuple[str | None, str]:
    """The configured key, or None with the reason an encrypted form cannot be built."""
    try:
        return public_key_for_form(config["forms.public_key_file"]), ""
    except KeyFileError as exc:
        return None, f"{exc.message} {CREATE_HINT}"


def data_field_count(compiled: CompiledForm) -> int:
    """Fields that hold data: not groups, notes (by the store's rule) or the meta block."""
    tree = compiled.tree()
    controls = {control.get("ref"): control for control in tree.iterfind("h:body//*[@ref]", NS)}
    count = 0
    for bind in tree.iter(f"{{{XFORMS}}}bind"):
        nodeset = bind.get("nodeset", "")
        if (
            bind.get("type")
            and not is_note(bind, controls.get(nodeset))
            and "/meta/" not in nodeset
        ):
            count += 1
    return count


def _check_one(
    path: Path,
    lists: dict[str, ReferenceList],
    lock: dict[str, dict[str, str]],
    public_key: str | None,
    key_problem: str,
    broken_lists: set[str],
) -> FormReport:
    report = FormReport(path.stem, path)
    try:
        workbook: Workbook = read_workbook(path)
    except Exception as exc:  # a corrupt or non-xlsx file; say so and go on with the others
        report.problems.append(
            error(
                f"cannot be read as an .xlsx workbook ({exc})",
                Location(path.name),
                "Save it again from Excel or LibreOffice as .xlsx.",
            )
        )
        return report
    report.version = workbook.settings.get("version", "")
    report.problems += check_workbook(workbook, lists)
    used = {file: lists[file].data for file, _ in lists_used(workbook) if file in lists}
    for file in sorted(used):
        if file in broken_lists:
            report.problems.append(
                error(
                    f"uses the reference list {file}, which has errors (listed above)",
                    Location(path.name),
                    f"Fix {file}; a form is not built from a broken list.",
                )
            )
    report.fingerprint = fingerprint(workbook, used)
    report.problems += check_version(
        report.form_id, report.version, report.fingerprint, lock, path.name
    )
    result = compile_form(path, lists, public_key, key_problem)
    report.problems += result.problems
    report.compiled = result.compiled
    if result.compiled is not None:
        report.problems += check_compiled_translations(result.compiled, path.name)
        report.field_count = data_field_count(result.compiled)
    return report


def check_forms(
    config: Config, form_ids: list[str] | None = None, validate: bool | None = None
) -> BuildReport:
    """Run every rule and the compiler on the chosen forms; write nothing."""
    validate = config["forms.validate"] if validate is None else validate
    paths = _form_paths(config["forms.source_dir"], form_ids)
    lists = load_reference_lists(config["forms.reference_dir"])
    list_problems = [p for ref in lists.values() for p in check_reference_list(ref)]
    lock = read_lock(config["forms.lock_file"])
    public_key, key_problem = _public_key(config)
    broken = {p.location.file for p in list_problems if p.level == ERROR}
    forms = [_check_one(p, lists, lock, public_key, key_problem, broken) for p in paths]
    if validate:
        # ODK Validate is a Java process per form; threads let them run on every core.
        compiled = [f for f in forms if f.compiled is not None]
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = pool.map(lambda f: validate_xform(f.compiled, f.path.name), compiled)
            for form, problems in zip(compiled, results, strict=True):
                form.problems += problems
    return BuildReport(forms, list_problems)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_form(report: FormReport, build_dir: Path, media_dirs: list[Path]) -> dict:
    compiled = report.compiled
    if compiled is None:  # only forms that compiled are written
        raise ValueError(f"{report.form_id} did not compile; it cannot be written")
    _write_atomic(build_dir / f"{compiled.form_id}.xml", compiled.xform)
    media_out = build_dir / f"{compiled.form_id}-media"
    if media_out.exists():
        shutil.rmtree(media_out)
    media = []
    for name in compiled.media:
        source = next((d / name for d in media_dirs if (d / name).is_file()), None)
        if source is None:
            raise FormError(
                f"{compiled.form_id} refers to media file '{name}', which is in none of "
                f"{', '.join(str(d) for d in media_dirs)}.",
                hint="Add the file next to the reference lists or remove the reference.",
            )
        media_out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, media_out / name)
        media.append({"file": name, "md5": hashlib.md5(source.read_bytes()).hexdigest()})  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
    return {
        "form_id": compiled.form_id,
        "version": compiled.version,
        "title": compiled.title,
        "file": f"{compiled.form_id}.xml",
        "md5": hashlib.md5(compiled.xform).hexdigest(),  # noqa: S324 - protocol hash (OpenRosa md5 / Central ids / ODK encryption), not for secrecy
        "encrypted": compiled.encrypted,
        "media": media,
        "sensitivity": xform_sensitivity(compiled),
    }


def build_forms(
    config: Config, form_ids: list[str] | None = None, validate: bool | None = None
) -> BuildReport:
    """Check the forms, then write each one without errors and record its version."""
    report = check_forms(config, form_ids, validate)
    build_dir: Path = config["forms.build_dir"]
    build_dir.mkdir(parents=True, exist_ok=True)
    index_path = build_dir / "index.json"
    index = json.loads(index_path.read_text("utf-8")) if index_path.is_file() else {}
    lock = read_lock(config["forms.lock_file"])
    media_dirs = [config["forms.reference_dir"], config["forms.source_dir"] / "media"]
    for form in report.forms:
        if not form.ok:
            continue
        index[form.form_id] = _write_form(form, build_dir, media_dirs)
        lock[form.form_id] = {"version": form.version, "fingerprint": form.fingerprint}
        form.written = True
    _write_atomic(
        index_path,
        (json.dumps(dict(sorted(index.items())), indent=2, ensure_ascii=False) + "\n").encode(
            "utf-8"
        ),
    )
    if any(f.written for f in report.forms):
        write_lock(config["forms.lock_file"], lock)
    return report
