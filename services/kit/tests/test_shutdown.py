"""Graceful shutdown: on SIGTERM a service stops accepting, finishes what is in flight, and exits."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiohttp

from shopkit.testing.peers import Peer, free_port

SLOW_APP = """
import asyncio
from aiohttp import web
from shopkit.app import build_app, run
from shopkit.auth import public
from shopkit.settings import KitSettings, load

@public
async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.5)
    return web.json_response({"finished": True})

app = build_app(load(KitSettings), database=False, events=False)
app.router.add_get("/slow", slow)
run(app)
"""


async def test_a_request_in_flight_at_sigterm_completes_and_the_process_exits_in_time(
    tmp_path: Path,
) -> None:
    script = tmp_path / "slow_app.py"
    script.write_text(SLOW_APP)
    port = free_port()
    peer = Peer(
        name="slow",
        argv=[sys.executable, str(script)],
        log_path=tmp_path / "slow.log",
        env={
            "SERVICE_NAME": "slow",
            "PORT": str(port),
            "MONGO_URL": "mongodb://unused",
            "LOG_LEVEL": "WARNING",
        },
        ready_url=f"http://127.0.0.1:{port}/healthz",
    ).start()
    assert peer.process is not None
    async with aiohttp.ClientSession() as http:
        # given a request in flight
        in_flight = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.sleep(0.3)

        # when the orchestrator asks the process to stop
        stopped_at = time.monotonic()
        peer.process.send_signal(signal.SIGTERM)

        # then the request still completes, and the process exits well inside a 25 s grace period
        response = await in_flight
        assert response.status == 200
        assert await response.json() == {"finished": True}
        while peer.process.poll() is None:
            assert time.monotonic() - stopped_at < 25
            await asyncio.sleep(0.05)
        assert peer.process.returncode == 0
