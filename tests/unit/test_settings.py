"""The settings object (services/runtime/settings.py): every setting from the environment or the DART_CONFIG
YAML file alike, the environment winning, code overrides winning over both; a bad value or an unknown key
refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.settings import Settings, SettingsError, load_settings, variable


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "dart.yaml"
    path.write_text(text)
    return {"DART_CONFIG": str(path)}


def test_defaults_with_nothing_set() -> None:
    settings = load_settings({"DART_HOME": "/srv/dart"})
    assert settings.effective_database_url == "sqlite:////srv/dart/dart.db" and settings.embedded
    assert (settings.host, settings.port, settings.log_format, settings.poll_interval) == ("127.0.0.1", 5000, "auto", 0.5)
    assert (settings.queue_prefix, settings.subscription_page_size, settings.clock_offset_seconds) == ("dart", 1000, 0)
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == ("", 25, "dart@localhost")


def test_every_setting_is_read_from_its_variable_and_from_its_yaml_key(tmp_path: Path) -> None:
    values = {"database_url": "postgresql://u@db:5432/dart", "broker_url": "sqs://k:s@sqs:9324",
              "host": "0.0.0.0", "port": "8080", "log_format": "json", "poll_interval": "0.25",
              "queue_prefix": "prod", "smtp_host": "mail", "smtp_port": "2525", "smtp_starttls": "true",
              "env_name": "prod", "email_max_age_seconds": "60", "clock_offset_seconds": "-30",
              "subscription_page_size": "10", "email_cc_on_error": "a@x.com,b@x.com"}
    from_env = load_settings({variable(k): v for k, v in values.items()})
    from_yaml = load_settings(_config(tmp_path, "".join(f"{k}: '{v}'\n" for k, v in values.items())))
    assert from_env == from_yaml
    assert from_env.port == 8080 and from_env.smtp_starttls is True and from_env.clock_offset_seconds == -30
    assert from_env.email_cc_on_error == ("a@x.com", "b@x.com") and not from_env.embedded


def test_the_environment_wins_over_the_file_and_code_overrides_win_over_both(tmp_path: Path) -> None:
    env = {**_config(tmp_path, "port: 7000\nhost: 10.0.0.1\nsmtp_host: file-mail\nsmtp_port: 26\n"),
           "DART_PORT": "7001", "DART_SMTP_HOST": "env-mail"}
    settings = load_settings(env, host=None)
    assert (settings.port, settings.host, settings.smtp_host, settings.smtp_port) == (7001, "10.0.0.1", "env-mail", 26)
    assert load_settings(env, port=7002, host="::1").port == 7002
    assert load_settings({**env, "DART_PORT": ""}).port == 7000  # an empty variable is unset


def test_yaml_values_keep_their_yaml_types(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "port: 6000\nqueue_prefix: 2024\nsmtp_starttls: yes\n"
                                                "email_cc_on_error: [a@x.com, ' b@x.com ']\nhome: ~/elsewhere\n"))
    assert settings.port == 6000 and settings.queue_prefix == "2024" and settings.smtp_starttls is True
    assert settings.email_cc_on_error == ("a@x.com", "b@x.com") and settings.home == Path.home() / "elsewhere"


@pytest.mark.parametrize(("name", "value"), [
    ("port", "abc"), ("port", "70000"), ("database_url", "mysql://x"), ("log_format", "xml"),
    ("poll_interval", "0"), ("poll_interval", "nan"), ("subscription_page_size", "1001"), ("smtp_port", "0"),
    ("smtp_starttls", "perhaps"), ("smtp_timeout", "-1"), ("email_max_age_seconds", "-1"),
    ("local_engines", "[1]"), ("local_engines", '{"e": {"module": 1}}'), ("local_engines", '{"e": []}'),
])
def test_a_bad_value_is_refused_naming_its_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable(name)):
        load_settings({variable(name): value})
    with pytest.raises(SettingsError, match=variable(name)):
        load_settings(_config(tmp_path, f"{name}: '{value}'\n"))


def test_a_bad_secret_is_named_but_not_shown() -> None:
    with pytest.raises(SettingsError, match="DART_BOOTSTRAP_API_KEY") as caught:
        load_settings({}, bootstrap_api_key=["s3cr3t"])
    assert "s3cr3t" not in str(caught.value)


def test_the_config_file_refuses_unknown_keys_and_unreadable_content(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown settings: prot, smtp_hots"):
        load_settings(_config(tmp_path, "prot: 1\nsmtp_hots: x\nport: 2\n"))
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(_config(tmp_path, "- port\n"))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings({"DART_CONFIG": str(tmp_path / "missing.yaml")})


def test_the_process_environment_is_the_default_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DART_CONFIG", _config(tmp_path, "smtp_host: file-mail\nport: 6001\n")["DART_CONFIG"])
    monkeypatch.setenv("DART_PORT", "6002")
    assert (load_settings().smtp_host, load_settings().port) == ("file-mail", 6002)
    assert (Settings().smtp_host, Settings().port) == ("file-mail", 6002)  # the class reads the same sources


def test_settings_are_frozen_and_keep_secrets_out_of_their_repr() -> None:
    settings = load_settings({"DART_SMTP_PASSWORD": "pw-123", "DART_BOOTSTRAP_API_KEY": "k:secret-456"})
    assert "pw-123" not in repr(settings) and "secret-456" not in repr(settings)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_a_local_engine_is_a_command_started_cold_or_a_module_forked_warm() -> None:
    import sys

    from services.adapters.local_engines import BUILT_IN, local_engine_commands, warm_engine_argvs

    raw = ('{"mine": ["/usr/bin/env", "mine"], "sdk_one": {"module": "pkg.engine", "args": ["--x"]},'
           ' "no_op_engine": ["/bin/true"]}')
    commands = local_engine_commands(raw)
    assert commands["mine"] == ["/usr/bin/env", "mine"] and commands["no_op_engine"] == ["/bin/true"]
    assert commands["sdk_one"] == [sys.executable, "-m", "pkg.engine", "--x"]
    assert commands["s3_engine"] == BUILT_IN["s3_engine"]
    warm = warm_engine_argvs(raw)
    assert warm["sdk_one"] == ["pkg.engine", "--x"] and warm["s3_engine"] == ["engines.s3"]
    assert "mine" not in warm and "no_op_engine" not in warm  # a command: started cold, even a built-in's name
