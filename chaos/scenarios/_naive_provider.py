"""The incident's client of a model provider: one provider, each attempt cut at a short
timeout and retried at once, a few times, with no budget and no jitter. When the provider is
down every request fails (there is nowhere else to go); when it comes back slow, every attempt
times out and is retried at once: attempts run at several times the load, exactly when the
provider can least take them."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

__all__ = ["RetryAtOnce", "naive_app"]


class RetryAtOnce:
    """Ask ``url``; on any error or past ``attempt_timeout``, again at once, ``retries``
    times."""

    def __init__(self, url: str, *, attempt_timeout: float = 0.2, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.attempt_timeout = attempt_timeout
        self.retries = retries
        self.attempts = 0
        self.requests = 0
        self.session: aiohttp.ClientSession | None = None

    async def ask(self, prompt: str) -> str | None:
        self.requests += 1
        assert self.session is not None
        for _ in range(self.retries + 1):
            self.attempts += 1
            try:
                async with asyncio.timeout(self.attempt_timeout):
                    async with self.session.get(
                        f"{self.url}/complete", params={"prompt": prompt}
                    ) as reply:
                        if reply.status == 200:
                            return await reply.text()
            except (OSError, aiohttp.ClientError, TimeoutError):
                pass
        return None


def naive_app(client: RetryAtOnce) -> web.Application:
    """``GET /ask``: 200 with the answer, 503 when every attempt failed."""

    async def answer(request: web.Request) -> web.Response:
        text = await client.ask(request.query.get("prompt", ""))
        if text is None:
            return web.Response(status=503, text="the provider did not answer")
        return web.Response(text=text, headers={"X-Provider": "primary"})

    async def open_session(app: web.Application) -> None:
        client.session = aiohttp.ClientSession()

    async def close_session(app: web.Application) -> None:
        if client.session is not None:
            await client.session.close()

    app = web.Application()
    app.router.add_get("/ask", answer)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app
