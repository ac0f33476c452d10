"""What both protocols' handlers share: JSON in and out, and where the model runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from aiohttp import web

from modelwerk.serving import jsonio

# Up to this many rows a request is predicted on the event loop (well under a millisecond).
INLINE_MAX_ROWS: Final = 1000


def json_response(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=jsonio.dumps(obj), status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


async def read_json(request: web.Request) -> object:
    """The body as JSON; jsonio.DecodeError or UnicodeDecodeError if it is not."""
    return jsonio.loads(await request.read())


async def run_model[T, R](function: Callable[[T], R], argument: T, rows: int) -> R:
    """Small batches on the event loop (a thread hop costs more than their prediction); large
    ones in a thread, so that they never stall health checks."""
    if rows <= INLINE_MAX_ROWS:
        return function(argument)
    return await asyncio.to_thread(function, argument)
