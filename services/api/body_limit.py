"""ASGI middleware that answers 413 to request bodies over a byte limit.

A declared Content-Length over the limit is refused before reading anything;
a streamed body is read only up to the limit, so a 50 MB upload never sits in
memory. Accepted bodies (at most `max_bytes`) are replayed to the app."""
import json

TOO_LARGE = 413


class BodySizeLimit:
    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._declared_length(scope) > self.max_bytes:
            return await self._refuse(send)
        body, disconnected = await self._read_capped(receive)
        if body is None:
            return await self._refuse(send)
        if disconnected:
            return
        await self.app(scope, self._replay(body, receive), send)

    @staticmethod
    def _declared_length(scope):
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def _read_capped(self, receive):
        """(body, disconnected); body is None once it grows past the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None, False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    @staticmethod
    def _replay(body, receive):
        sent = False

        async def replayed_receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return replayed_receive

    async def _refuse(self, send):
        detail = {"detail": f"request body is larger than {self.max_bytes} bytes"}
        payload = json.dumps(detail).encode()
        await send({"type": "http.response.start", "status": TOO_LARGE,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
