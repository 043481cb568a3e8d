"""Entry point: `notifications` (or `python -m notifications`) serves the API, settings from the environment."""

from notifications.app import create_app
from notifications.settings import NotificationsSettings
from shopkit import app


def main() -> None:
    app.main(NotificationsSettings, create_app)


if __name__ == "__main__":
    main()
