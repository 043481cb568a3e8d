"""Entry point: `orders` (or `python -m orders`) serves the orders API with settings from the environment."""

from orders.app import create_app
from orders.settings import OrdersSettings
from shopkit import app


def main() -> None:
    app.main(OrdersSettings, create_app)


if __name__ == "__main__":
    main()
