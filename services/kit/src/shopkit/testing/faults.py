"""A database that loses answers at a chosen line: the one fault no real peer provokes on demand."""

from __future__ import annotations

from typing import Any

from pymongo.errors import ExecutionTimeout

__all__ = ["LAND_THEN_TIME_OUT", "TIME_OUT", "LosesAnswers"]

LAND_THEN_TIME_OUT = "land, then time out"
TIME_OUT = "time out"


class LosesAnswers:
    """A collection whose next inserts follow `script`: LAND_THEN_TIME_OUT writes and then raises
    the driver's timeout (the answer is lost), TIME_OUT raises without writing; then it answers."""

    def __init__(self, collection: Any, script: list[str]) -> None:
        self._collection, self._script = collection, list(script)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
        step = self._script.pop(0) if self._script else "answer"
        if step != TIME_OUT:
            result = await self._collection.insert_one(document, *args, **kwargs)
            if step != LAND_THEN_TIME_OUT:
                return result
        raise ExecutionTimeout("operation exceeded time limit", 50)
