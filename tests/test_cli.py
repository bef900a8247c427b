"""The command line, through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from nigraan.cli import main
from tests.formtables import form_md, write_xlsx
from tests.test_forms_rules import CODE_ROW, HEAD, row

README = Path(__file__).parent.parent / "README.md"


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


COMMANDS = [(), *all_commands(main)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "nigraan")
def test_every_command_has_help(runner, path):
    result = runner.invoke(main, [*path, "--help"], env={"NIGRAAN_CONFIG": None})
    assert result.exit_code == 0, result.output
    assert "Usage: main" in result.output or "Usage: " in result.output
    assert len(result.output.splitlines()) > 3


@pytest.mark.parametrize("path", COMMANDS[1:], ids=" ".join)
def test_every_command_is_in_the_readme(path):
    assert f"nigraan {' '.join(path)}" in README.read_text(encoding="utf-8")


def summary_row(output: str, form_id: str) -> list[str]:
    """The cells of a form's line in the summary table."""
    [line] = [ln for ln in output.splitlines() if ln.startswith(form_id + " ")]
    return line.split()[1:]


@pytest.fixture
def env(tmp_path, small_forms, public_key_file):
    return {
        "NIGRAAN_INSTANCE_DIR": str(tmp_path / "instance"),
        "NIGRAAN_FORMS_SOURCE_DIR": str(small_forms),
        "NIGRAAN_FORMS_REFERENCE_DIR": str(small_forms.parent / "reference"),
        "NIGRAAN_FORMS_LOCK_FILE": str(tmp_path / "built-versions.json"),
        "NIGRAAN_FORMS_PUBLIC_KEY_FILE": str(public_key_file),
        "NIGRAAN_FORMS_VALIDATE": "false",
    }


def test_forms_build_writes_the_xform_and_a_summary(runner, env, small_forms, tmp_path):
    write_xlsx(form_md("service_contact", HEAD + CODE_ROW), small_forms / "service_contact.xlsx")
    result = runner.invoke(main, ["forms", "build"], env=env)
    assert result.exit_code == 0, result.output
    assert summary_row(result.output, "service_contact") == ["2026112801", "1", "no", "0", "built"]
    assert "1 of 1 forms built." in result.output
    built = tmp_path / "instance" / "forms" / "service_contact.xml"
    assert b'id="service_contact"' in built.read_bytes()
    assert "service_contact" in (tmp_path / "built-versions.json").read_text()


def test_forms_check_reports_errors_and_exits_1(runner, env, small_forms, tmp_path):
    write_xlsx(
        form_md("service_contact", HEAD + CODE_ROW + row("integer", "n", ur="")),
        small_forms / "service_contact.xlsx",
    )
    result = runner.invoke(main, ["forms", "check"], env=env)
    assert result.exit_code == 1
    assert "service_contact.xlsx, sheet 'survey', row 3, column 'label::Urdu (ur)'" in result.output
    assert "FAILED (1 error)" in result.output
    assert not (tmp_path / "instance" / "forms").exists()  # check writes nothing


def test_unknown_form_id_is_a_clear_error(runner, env, small_forms):
    write_xlsx(form_md("service_contact", HEAD + CODE_ROW), small_forms / "service_contact.xlsx")
    result = runner.invoke(main, ["forms", "check", "custody_vist"], env=env)
    assert result.exit_code == 2
    assert "No form named custody_vist" in result.output
    assert "Known forms: service_contact" in result.output


def test_bad_setting_stops_at_start_up(runner, env):
    result = runner.invoke(main, ["config"], env={**env, "NIGRAAN_FORMS_VALIDATE": "perhaps"})
    assert result.exit_code == 2
    assert "should be a bool" in result.output


def test_config_lists_settings_with_their_sources(runner, env):
    result = runner.invoke(main, ["config"], env=env)
    assert result.exit_code == 0
    assert "forms.validate = False  [NIGRAAN_FORMS_VALIDATE]" in result.output
    assert "(env NIGRAAN_FORMS_BUILD_DIR)" in result.output


def test_keys_create(runner, env, tmp_path):
    key = tmp_path / "k" / "form-public.pem"
    env = {**env, "NIGRAAN_FORMS_PUBLIC_KEY_FILE": str(key), "PASS": "s3cret phrase"}
    result = runner.invoke(main, ["keys", "create", "--passphrase-env", "PASS"], env=env)
    assert result.exit_code == 0, result.output
    assert key.is_file() and (tmp_path / "k" / "form-private.pem").is_file()
    assert "s3cret" not in result.output
    again = runner.invoke(main, ["keys", "create", "--if-missing"], env=env)
    assert again.exit_code == 0 and "nothing to do" in again.output
    refused = runner.invoke(main, ["keys", "create", "--no-passphrase"], env=env)
    assert refused.exit_code == 2 and "will not overwrite" in refused.output


def test_pyxform_warnings_are_shown_not_swallowed(runner, env, small_forms):
    md = form_md(
        "service_contact", HEAD + CODE_ROW + row("image", "room_photo", sensitivity="general")
    )
    write_xlsx(md, small_forms / "service_contact.xlsx")
    result = runner.invoke(main, ["forms", "check"], env=env)
    assert result.exit_code == 0, result.output
    assert "WARNING [pyxform] service_contact.xlsx, row 3: [row : 3] Use the max-pixels" in (
        result.output
    )
    assert summary_row(result.output, "service_contact") == ["2026112801", "2", "no", "1", "passed"]
