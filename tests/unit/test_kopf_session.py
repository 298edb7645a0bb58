"""kopf's session (handlers.bounded_session): its requests wait for one of the capped
connections as long as it takes, and only a slow API server times them out, as the
operator's own requests do (kubeaio). kopf gives every request a total timeout, which counted
the wait in the queue: at a bulk apply its finalizer patches timed out there and were sent
again (bench/scale.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from placement.runtime.handlers import bounded_session

# What kopf passes with settings.networking.request_timeout = 0.5 (kopf/_cogs/clients/api.py).
KOPF_TIMEOUT = aiohttp.ClientTimeout(total=0.5, sock_connect=None)


def run(seconds: float, scenario: Any) -> None:
    """`scenario(session, url)` with kopf's session (one connection) on a server that answers
    each request after `seconds`."""

    async def main() -> None:
        async def slow(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(seconds)
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", slow)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        url = f"http://127.0.0.1:{server.port}/apis/x"
        session = bounded_session(kopf.ConnectionInfo(server=url), connections=1).aiohttp_session
        try:
            await scenario(session, url)
        finally:
            await session.close()
            await server.close()

    asyncio.run(main())


def test_requests_queued_behind_others_longer_than_the_timeout_still_go_through() -> None:
    async def scenario(session: aiohttp.ClientSession, url: str) -> None:
        async def patch() -> int:
            response = await session.request(method="patch", url=url, timeout=KOPF_TIMEOUT)
            async with response:
                return response.status

        # Four at once on one connection, 0.3 s each: the last waits 0.9 s for it.
        assert await asyncio.gather(*(patch() for _ in range(4))) == [200] * 4

    run(0.3, scenario)


def test_an_api_server_slower_than_the_timeout_still_times_the_request_out() -> None:
    async def scenario(session: aiohttp.ClientSession, url: str) -> None:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await session.request(method="patch", url=url, timeout=KOPF_TIMEOUT)
        assert asyncio.get_running_loop().time() - started < 2

    run(30, scenario)
