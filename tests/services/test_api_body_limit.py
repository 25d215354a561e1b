"""The body-size limit refuses big uploads without reading them into memory."""
import asyncio
import select
import socket

from services.api.body_limit import BodySizeLimit

CHUNK = b"x" * 65536


def run(app, headers, chunks):
    """Drive the ASGI middleware by hand; returns (status, chunks the app pulled, body the app saw)."""
    pulled, seen, sent = [0], [], []

    async def receive():
        if pulled[0] < len(chunks):
            pulled[0] += 1
            return {"type": "http.request", "body": chunks[pulled[0] - 1], "more_body": pulled[0] < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": headers}
    asyncio.run(BodySizeLimit(inner, max_bytes=app)(scope, receive, send))
    return sent[0]["status"], pulled[0], seen


def test_a_streamed_50_mb_body_is_refused_after_reading_just_past_the_limit():
    chunks = [CHUNK] * (50 * 2**20 // len(CHUNK))
    status, pulled, seen = run(1_000_000, [], chunks)
    assert status == 413 and seen == []
    assert pulled == 1_000_000 // len(CHUNK) + 1  # 16 of 800 chunks


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    status, pulled, _ = run(1000, [(b"content-length", b"52428800")], [CHUNK])
    assert status == 413 and pulled == 0


def test_a_body_within_the_limit_reaches_the_app_whole():
    status, _, seen = run(3 * len(CHUNK), [], [CHUNK, CHUNK, b"end"])
    assert status == 200 and seen == [CHUNK + CHUNK + b"end"]


def test_a_50_mb_upload_to_the_real_server_is_413_long_before_it_is_sent(make_client, serve, enqueued):
    """Over a real socket, chunked (no Content-Length): the answer comes after about the limit."""
    url = serve(make_client(MAX_BODY_BYTES=1_000_000).app)
    host, port = url.removeprefix("http://").split(":")
    sent, reply = 0, b""
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /jobs HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n" % (host.encode(), port.encode()))
        try:
            while sent < 50 * 2**20 and not select.select([connection], [], [], 0)[0]:
                connection.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                sent += len(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        reply = connection.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 20 * 2**20  # stopped after ~1 MB plus what the socket buffers held (1-5 MB here), not 50
    assert enqueued == []
