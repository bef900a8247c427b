"""Settings: layered defaults -> file -> env -> overrides, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from nigraan.config import SETTINGS, load_config
from nigraan.errors import ConfigError


def test_defaults_follow_the_instance_folder():
    config = load_config(environ={}, overrides={"instance_dir": "/srv/nigraan"})
    assert config["forms.build_dir"] == Path("/srv/nigraan/forms")
    assert config["forms.public_key_file"] == Path("/srv/nigraan/keys/form-public.pem")
    assert config["forms.validate"] is True
    assert config.sources["forms.validate"] == "default"


def test_layers_override_in_order(tmp_path):
    file = tmp_path / "nigraan.toml"
    file.write_text('instance_dir = "state"\n[forms]\nvalidate = false\nbuild_dir = "out"\n')
    env = {"NIGRAAN_FORMS_BUILD_DIR": "/env/out", "NIGRAAN_CONFIG": str(file)}
    config = load_config(environ=env)
    assert config["instance_dir"] == tmp_path / "state"  # relative to the config file
    assert config["forms.validate"] is False
    assert config["forms.build_dir"] == Path("/env/out")
    assert config.sources["forms.build_dir"] == "NIGRAAN_FORMS_BUILD_DIR"

    config = load_config(environ=env, overrides={"forms.build_dir": "/test/out"})
    assert config["forms.build_dir"] == Path("/test/out")


def test_unknown_setting_in_file_suggests_the_right_name(tmp_path):
    file = tmp_path / "nigraan.toml"
    file.write_text("[forms]\nvalidat = true\n")
    with pytest.raises(ConfigError) as exc:
        load_config(file, environ={})
    assert "Unknown setting 'forms.validat'" in str(exc.value)
    assert "Did you mean 'forms.validate'?" in str(exc.value)


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="Unknown setting 'NIGRAAN_FORM_BUILD_DIR'"):
        load_config(environ={"NIGRAAN_FORM_BUILD_DIR": "x"})


def test_variables_that_are_not_settings_are_allowed():
    config = load_config(environ={"NIGRAAN_VENV": "/opt/venv", "NIGRAAN_TEST_POSTGRES": "x"})
    assert config.sources["instance_dir"] == "default"


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"'forms.validate' .* should be a bool, got 'maybe'"):
        load_config(environ={"NIGRAAN_FORMS_VALIDATE": "maybe"})


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[forms\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [s.env_name for s in SETTINGS if s.env_name not in readme]
    assert missing == []


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql+psycopg://nigraan:s3cret@db:5432/nigraan",
            "postgresql+psycopg://nigraan:***@db:5432/nigraan",
        ),
        # A password holding '/' or an escaped '@' is hidden whole too.
        ("postgresql://nigraan:s3/cret@db/nigraan", "postgresql://nigraan:***@db/nigraan"),
        ("postgresql://nigraan:s3%40cret@db/nigraan", "postgresql://nigraan:***@db/nigraan"),
        ("sqlite:////srv/nigraan/nigraan.sqlite3", "sqlite:////srv/nigraan/nigraan.sqlite3"),
        ("https://admin:s3cret@central.example.org", "https://admin:***@central.example.org"),
        ("https://central.example.org", "https://central.example.org"),
        ("", ""),
        # Not a URL at all (a typo): it could hold the password anywhere, so none of it shows.
        ("postgresql//nigraan:s3cret@db/nigraan", "***"),
    ],
)
def test_urls_are_shown_without_their_password(url, shown):
    from nigraan.config import BY_NAME, shown_url

    assert shown_url(url) == shown
    assert BY_NAME["database.url"].display(url) == shown
    assert BY_NAME["central.base_url"].display(url) == shown
    assert "s3" not in repr(load_config(environ={}, overrides={"database.url": url}))
