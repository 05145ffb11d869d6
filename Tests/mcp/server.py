"""A real MCP server for Drover's tests (the official `mcp` package's FastMCP).

    python server.py http PORT    streamable HTTP on 127.0.0.1:PORT/mcp; prints "ready" when listening
    python server.py stdio        newline-delimited JSON-RPC on stdin/stdout

With MCP_BEARER set, the HTTP server answers 401 to every request without
`Authorization: Bearer $MCP_BEARER`, as a server behind a token does.
"""
import asyncio
import os
import sys

from mcp.server.fastmcp import FastMCP

mcp = FastMCP("drover-test", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000)


@mcp.tool()
def add(a: int, b: int) -> str:
    """Adds two integers and says the sum."""
    return f"the sum of {a} and {b} is {a + b}"


@mcp.tool()
async def slow(seconds: float) -> str:
    """Waits, then answers: for tests that kill the server mid-call."""
    print("slow call started", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@mcp.tool()
def fail(reason: str) -> str:
    """Always raises, so the result is a tool error."""
    raise ValueError(reason)


@mcp.tool()
def open_descriptors() -> str:
    """Lists this server's open descriptors and what each is, one "fd target" per line."""
    import os
    lines = []
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        try:
            lines.append(f"{fd} {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return "\n".join(lines)


def guarded(app, token: str):
    """The ASGI app behind a bearer token."""
    expected = f"Bearer {token}".encode()

    async def guard(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"a bearer token is required"})
            return
        await app(scope, receive, send)
    return guard


if __name__ == "__main__":
    if sys.argv[1] == "http" and os.environ.get("MCP_BEARER"):
        import uvicorn
        uvicorn.run(guarded(mcp.streamable_http_app(), os.environ["MCP_BEARER"]), host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run(transport="streamable-http" if sys.argv[1] == "http" else "stdio")
