"""Entry point: `payments` (or `python -m payments`) serves the payments API with settings from the environment."""

from payments.app import create_app
from payments.settings import PaymentsSettings
from shopkit import app


def main() -> None:
    app.main(PaymentsSettings, create_app)


if __name__ == "__main__":
    main()
