"""Entry point: `carts` (or `python -m carts`) serves the carts API with settings from the environment."""

from carts.app import create_app
from carts.settings import CartsSettings
from shopkit import app


def main() -> None:
    app.main(CartsSettings, create_app)


if __name__ == "__main__":
    main()
