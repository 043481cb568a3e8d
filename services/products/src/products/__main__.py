"""Entry point: `products` (or `python -m products`) serves the products API from the environment."""

from __future__ import annotations

import sys

from products.app import create_app
from products.settings import ProductsSettings
from shopkit.app import run
from shopkit.settings import SettingsError, load


def main() -> None:
    try:
        settings = load(ProductsSettings)
    except SettingsError as error:
        sys.exit(str(error))
    run(create_app(settings))


if __name__ == "__main__":
    main()
