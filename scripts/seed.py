"""`./task seed`: load the deterministic demo catalog into the running local stack (see products.seed)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import stack_env

if __name__ == "__main__":
    os.environ.update({**stack_env(), "SERVICE_NAME": "products"})
    from products import seed

    asyncio.run(seed.main())
