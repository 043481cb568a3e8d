"""Entry point: `users` (or `python -m users`) serves the users API with settings from the environment."""

from __future__ import annotations

import sys

from shopkit.app import run
from shopkit.settings import SettingsError, load
from users.app import create_app
from users.settings import UsersSettings


def main() -> None:
    try:
        settings = load(UsersSettings)
    except SettingsError as error:
        sys.exit(str(error))
    run(create_app(settings))


if __name__ == "__main__":
    main()
