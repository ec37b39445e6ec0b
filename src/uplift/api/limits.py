"""Request body size limit as a pure ASGI middleware: oversized bodies get 413 before anything parses them."""

from __future__ import annotations

import json

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """Reject HTTP requests whose body is larger than ``max_bytes`` with 413.

    A declared ``Content-Length`` above the limit is refused before reading; otherwise the body
    (chunked or not) is read up to the limit and replayed to the application, so a streamed body
    that grows past the limit is refused as soon as it does.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "Content-Length is not an integer")
                    return
                if declared > self.max_bytes:
                    await _reply(send, 413, f"request body of {declared} bytes exceeds the limit of {self.max_bytes}")
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _reply(send, 413, f"request body exceeds the limit of {self.max_bytes} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
