"""The Twilio API peer: Prism on Twilio's own description, behind Twilio's test phone numbers.

Prism checks each request against the description (a message without `To` is a 422) and answers
its example, but knows nothing of phone numbers. Twilio's test credentials do: a message to one of
its magic numbers fails with the error the real API gives such a number
(twilio.com/docs/iam/test-credentials). This front answers those as Twilio does and hands every
other request to Prism unchanged.

    python -m shopkit.testing.twilio_numbers PORT PRISM   (PRISM: the `shop-twilio-peer` script,
                                                         started on a port of its own)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# To-number -> (status, Twilio error code, message), as Twilio's test credentials answer them.
MAGIC_TO = {
    "+15005550001": (400, 21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (400, 21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (400, 21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (400, 21614, "'To' number is not a valid mobile number"),
}
UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def forward(request: web.Request) -> web.Response:
    body = await request.read()
    if request.method == "POST" and request.path.endswith("/Messages.json"):
        form = await request.post()
        refused = MAGIC_TO.get(str(form.get("To", "")))
        if refused is not None:
            status, code, message = refused
            return web.json_response(
                {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
                status=status,
            )
    async with request.app[SESSION].request(
        request.method,
        request.app[UPSTREAM] + request.path_qs,
        data=body,
        headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
    ) as answer:
        payload = await answer.read()
        return web.Response(
            body=payload, status=answer.status, content_type=answer.content_type or None
        )


async def _prism(app: web.Application) -> AsyncIterator[None]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(sys.argv[2], str(port))
    app[UPSTREAM] = f"http://127.0.0.1:{port}"
    for _ in range(600):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        if process.returncode is not None:
            raise RuntimeError("Prism exited before it was ready")
        await asyncio.sleep(0.1)
    app[SESSION] = aiohttp.ClientSession()
    yield
    await app[SESSION].close()
    process.terminate()
    await process.wait()


def main() -> None:
    app = web.Application()
    app.cleanup_ctx.append(_prism)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
