"""Loading settings: TOML file, environment overrides, and one-line errors naming the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import Settings, env_name, load_settings
from monitor.errors import ConfigError

WriteToml = Callable[[str], Path]


@pytest.fixture
def write_toml(tmp_path: Path) -> WriteToml:
    def write(text: str) -> Path:
        path = tmp_path / "liqmon.toml"
        path.write_text(text)
        return path

    return write


def _error(path: Path | None = None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_no_file_and_no_environment_gives_the_documented_defaults() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topics.fills_partitions == 6
    assert settings.service.price_band == 0.2


def test_file_values_replace_defaults_section_by_field(write_toml: WriteToml) -> None:
    path = write_toml('[kafka]\nclient_id = "risk-1"\n[topics]\nfills_partitions = 12\n')
    settings = load_settings(path, environ={})
    assert settings.kafka.client_id == "risk-1"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topics.fills_partitions == 12


def test_a_wrong_type_in_the_file_is_one_line_naming_field_and_file(write_toml: WriteToml) -> None:
    path = write_toml("[kafka]\nbootstrap_servers = 9092\n")
    assert _error(path) == (f"config kafka.bootstrap_servers: expected str, got int (from {path})")


def test_a_wrong_type_in_the_environment_names_the_variable() -> None:
    message = _error(environ={"LIQMON_SERVICE__MAX_PRICE_BATCH": "lots"})
    assert message == (
        "config service.max_price_batch: expected int, got str "
        "(from env LIQMON_SERVICE__MAX_PRICE_BATCH)"
    )


def test_an_unknown_field_in_the_file_is_an_error(write_toml: WriteToml) -> None:
    path = write_toml("[kafka]\nbootstrap = 'x:1'\n")
    assert _error(path) == f"config kafka.bootstrap: unknown field (from {path})"


def test_an_unknown_section_in_the_file_is_an_error(write_toml: WriteToml) -> None:
    path = write_toml("[kafak]\nclient_id = 'x'\n")
    assert _error(path) == f"config kafak: unknown section (from {path})"


def test_an_unknown_field_in_the_environment_is_an_error() -> None:
    message = _error(environ={"LIQMON_KAFKA__PORT": "9092"})
    assert message == "config kafka.port: unknown field (from env LIQMON_KAFKA__PORT)"


def test_a_single_underscore_variable_is_caught_as_a_typo() -> None:
    message = _error(environ={"LIQMON_KAFKA_BOOTSTRAP_SERVERS": "x:1"})
    assert "LIQMON_KAFKA_BOOTSTRAP_SERVERS" in message
    assert "LIQMON_KAFKA__BOOTSTRAP_SERVERS" in message


def test_unrelated_liqmon_variables_are_ignored() -> None:
    assert load_settings(None, environ={"LIQMON_CONFIG": "x.toml", "LIQMON_HOME": "/"}) == (
        Settings()
    )


def test_the_environment_overrides_the_file(write_toml: WriteToml) -> None:
    path = write_toml('[kafka]\nbootstrap_servers = "file:9092"\nclient_id = "from-file"\n')
    settings = load_settings(path, environ={"LIQMON_KAFKA__BOOTSTRAP_SERVERS": "env:9092"})
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.kafka.client_id == "from-file"


def test_environment_strings_become_the_field_type() -> None:
    settings = load_settings(
        None,
        environ={
            "LIQMON_TOPICS__FILLS_PARTITIONS": "12",
            "LIQMON_SERVICE__PRICE_BAND": "0.05",
            "LIQMON_KAFKA__SSL_CAFILE": "",
            "LIQMON_LOG__FORMAT": "json",
        },
    )
    assert settings.topics.fills_partitions == 12
    assert settings.service.price_band == 0.05
    assert settings.kafka.ssl_cafile is None
    assert settings.log.format == "json"


def test_a_value_outside_its_range_says_the_bound() -> None:
    message = _error(environ={"LIQMON_SERVICE__PRICE_BAND": "20"})
    assert message == (
        "config service.price_band: expected float < 1.0 (from env LIQMON_SERVICE__PRICE_BAND)"
    )


def test_a_choice_field_lists_the_choices(write_toml: WriteToml) -> None:
    path = write_toml('[kafka]\nsecurity_protocol = "TLS"\n')
    message = _error(path)
    assert message.startswith("config kafka.security_protocol: expected one of ")
    assert "SASL_SSL" in message
    assert "got 'TLS'" in message


def test_a_cross_field_rule_names_the_missing_field_and_both_sources(write_toml: WriteToml) -> None:
    path = write_toml('[kafka]\nsasl_plain_username = "u"\n')
    message = _error(path, environ={"LIQMON_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"})
    assert message == (
        "config kafka.sasl_mechanism: required with SASL_SSL "
        f"(from {path} and from env LIQMON_KAFKA__SECURITY_PROTOCOL)"
    )


def test_a_tls_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    message = _error(
        environ={"LIQMON_KAFKA__SECURITY_PROTOCOL": "SSL", "LIQMON_KAFKA__SSL_CAFILE": str(missing)}
    )
    assert message.startswith(f"config kafka.ssl_cafile: no such file {missing}")


def test_two_topics_cannot_share_a_name() -> None:
    message = _error(environ={"LIQMON_TOPICS__STATE": "fills"})
    assert message == (
        "config topics.state: 'fills' is already the fills topic (from env LIQMON_TOPICS__STATE)"
    )


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.toml") == f"config file {tmp_path / 'nope.toml'} not found"


def test_a_file_that_is_not_toml_is_one_line(write_toml: WriteToml) -> None:
    path = write_toml("[kafka\n")
    assert _error(path).startswith(f"config file {path} is not valid TOML: ")


def test_env_name_spells_section_and_field_with_two_underscores() -> None:
    assert env_name("kafka.bootstrap_servers") == "LIQMON_KAFKA__BOOTSTRAP_SERVERS"


def test_the_cli_prints_a_config_error_as_one_line_and_exits_2(
    write_toml: WriteToml,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_toml("[topics]\nfills_partitions = 'six'\n")
    code = main(["topics", "check", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"liqmon: error: config topics.fills_partitions: expected int, got str (from {path})\n"
    )


def test_the_cli_reads_the_file_named_by_liqmon_config(
    write_toml: WriteToml,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_toml("[service]\nnot_a_setting = 1\n")
    monkeypatch.setenv("LIQMON_CONFIG", str(path))
    assert main(["topics", "check"]) == 2
    assert capsys.readouterr().err == (
        f"liqmon: error: config service.not_a_setting: unknown field (from {path})\n"
    )
