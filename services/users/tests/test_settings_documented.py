"""Every setting the kit and the users service read is in the README table and in .env.example."""

from __future__ import annotations

from pathlib import Path

from shopkit.settings import KitSettings, load, read_env_file
from shopkit.testing.documentation import settings_read, undocumented
from users.settings import UsersSettings

ROOT = Path(__file__).resolve().parents[3]


def test_every_setting_read_is_documented() -> None:
    sources = [*ROOT.glob("services/kit/src/**/*.py"), *ROOT.glob("services/users/src/**/*.py")]
    names = settings_read([KitSettings, UsersSettings], sources)

    assert "SIGNING_KEYS" in names
    assert "SHOP_TEST_MONGO_URL" in names
    assert undocumented(names, ROOT) == {"README.md": [], ".env.example": []}


def test_the_local_env_file_is_a_complete_working_configuration() -> None:
    settings = load(UsersSettings, read_env_file(ROOT / ".env.example"))
    assert settings.admin_email
    assert settings.clients()


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
