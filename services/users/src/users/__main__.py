"""Entry point: `users` (or `python -m users`) serves the users API with settings from the environment."""

from shopkit import app
from users.app import create_app
from users.settings import UsersSettings


def main() -> None:
    app.main(UsersSettings, create_app)


if __name__ == "__main__":
    main()
