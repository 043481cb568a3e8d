"""Entry point: `products` (or `python -m products`) serves the products API from the environment."""

from products.app import create_app
from products.settings import ProductsSettings
from shopkit import app


def main() -> None:
    app.main(ProductsSettings, create_app)


if __name__ == "__main__":
    main()
