"""Every setting the kit and the users service read is in the README table and in .env.example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopkit.settings import KitSettings, SettingsError, load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented
from users.settings import UsersSettings, is_example_secret

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    sources = [*ROOT.glob("services/kit/src/**/*.py"), *ROOT.glob("services/users/src/**/*.py")]
    names = settings_read([KitSettings, UsersSettings], sources)

    assert "SIGNING_KEYS" in names
    assert "SHOP_TEST_MONGO_URL" in names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_is_a_complete_working_configuration() -> None:
    settings = load(UsersSettings, read_env_file(ROOT / ".env.example"))
    assert settings.local
    assert settings.admin_email
    assert settings.clients()


def test_the_example_secrets_are_refused_outside_the_local_stack() -> None:
    # given the example configuration, but not marked local (production is the default)
    example = read_env_file(ROOT / ".env.example")
    del example["ENVIRONMENT"]

    # when a service loads it, then it refuses to start, naming every example secret
    with pytest.raises(SettingsError) as refused:
        load(UsersSettings, example)
    for name in ("SIGNING_KEYS", "PASSWORD_PEPPER", "ADMIN_PASSWORD", "SERVICE_CLIENTS"):
        assert name in str(refused.value)
    assert example["PASSWORD_PEPPER"] not in str(refused.value)


@pytest.mark.parametrize("name", ["SIGNING_KEYS", "PASSWORD_PEPPER", "ADMIN_PASSWORD"])
def test_one_example_secret_among_own_ones_is_refused_in_production(
    name: str, users_env: dict[str, str]
) -> None:
    # given a production configuration with secrets of its own but one from .env.example
    example = read_env_file(ROOT / ".env.example")
    environ = {**users_env, name: example[name], "ENVIRONMENT": "production"}

    # then it does not load
    with pytest.raises(SettingsError, match=name):
        load(UsersSettings, environ)


def test_every_secret_of_the_example_file_is_known_as_an_example() -> None:
    example = read_env_file(ROOT / ".env.example")
    secrets = [
        *(key["d"] for key in json.loads(example["SIGNING_KEYS"])["keys"]),
        example["PASSWORD_PEPPER"],
        example["ADMIN_PASSWORD"],
        *(pair.partition(":")[2] for pair in example["SERVICE_CLIENTS"].split(",")),
    ]
    assert [secret for secret in secrets if not is_example_secret(secret)] == []


def test_own_secrets_load_in_production(users_env: dict[str, str]) -> None:
    settings = load(UsersSettings, {**users_env, "ENVIRONMENT": "production"})
    assert not settings.local


def test_an_undocumented_setting_is_reported(tmp_path: Path) -> None:
    tmp_path.joinpath("README.md").write_text("| `KNOWN` | all | x | no | y |\n")
    tmp_path.joinpath(".env.example").write_text("KNOWN=1\n")
    source = tmp_path / "reader.py"
    source.write_text('import os\nos.environ.get("SNEAKY_FLAG")\n')

    names = settings_read([], [source]) | {"KNOWN"}

    assert undocumented(names, tmp_path) == {
        "README.md": ["SNEAKY_FLAG"],
        ".env.example": ["SNEAKY_FLAG"],
    }
