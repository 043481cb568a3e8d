"""Settings from the environment: typed parsing, all errors at once, secrets never shown."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shopkit.settings import KitSettings, Secret, SettingsError, env, env_names, load


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    name: str = env("NAME", help="a required string")
    workers: int = env("WORKERS", 2, help="an int with a default")
    ratio: float = env("RATIO", 0.5, help="a float")
    debug: bool = env("DEBUG", False, help="a bool")
    hosts: tuple[str, ...] = env("HOSTS", (), help="a comma-separated list")
    password: Secret = env("PASSWORD", help="a secret")
    region: str | None = env("REGION", None, help="an optional string")


def test_values_are_parsed_to_their_declared_types() -> None:
    # given an environment with every kind of value
    environ = {
        "NAME": "shop",
        "WORKERS": "4",
        "RATIO": "0.25",
        "DEBUG": "yes",
        "HOSTS": " a, b ,,c ",
        "PASSWORD": "hunter2",
        "REGION": "eu",
    }
    # when it is loaded
    settings = load(Sample, environ)
    # then each field has its type
    assert settings == Sample(
        name="shop",
        workers=4,
        ratio=0.25,
        debug=True,
        hosts=("a", "b", "c"),
        password=Secret("hunter2"),
        region="eu",
    )


def test_defaults_fill_missing_and_empty_variables() -> None:
    # given only the required variables, one optional left empty
    settings = load(Sample, {"NAME": "shop", "PASSWORD": "p", "WORKERS": ""})
    # then the defaults apply
    assert (settings.workers, settings.debug, settings.hosts, settings.region) == (
        2,
        False,
        (),
        None,
    )


def test_every_problem_is_reported_together_without_echoing_values() -> None:
    # given a missing required variable and two invalid ones
    environ = {"PASSWORD": "p", "WORKERS": "many-secret-words", "DEBUG": "maybe"}
    # when it is loaded
    with pytest.raises(SettingsError) as raised:
        load(Sample, environ)
    # then all three are named, and no raw value appears
    problems = raised.value.problems
    assert len(problems) == 3
    assert any(p.startswith("NAME is required") for p in problems)
    assert any(p.startswith("WORKERS is invalid") for p in problems)
    assert any(p.startswith("DEBUG is invalid") for p in problems)
    assert "many-secret-words" not in str(raised.value)


def test_a_secret_never_shows_its_value() -> None:
    # given a secret, when it is printed, then the value is masked
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(load(Sample, {"NAME": "n", "PASSWORD": "hunter2"}))


def test_the_database_defaults_to_the_service_name() -> None:
    # given kit settings with and without an explicit database
    base = {"SERVICE_NAME": "orders", "MONGO_URL": "mongodb://127.0.0.1:1/"}
    # then the service name is the default database
    assert load(KitSettings, base).database == "orders"
    assert load(KitSettings, {**base, "MONGO_DATABASE": "other"}).database == "other"


def test_env_names_lists_every_variable_a_class_reads() -> None:
    assert env_names(Sample) == ["NAME", "WORKERS", "RATIO", "DEBUG", "HOSTS", "PASSWORD", "REGION"]
    assert {"SERVICE_NAME", "MONGO_URL", "NATS_URL", "JWKS_URL"} <= set(env_names(KitSettings))
