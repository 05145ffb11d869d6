"""A real MCP server for Drover's tests (the official `mcp` package's FastMCP).

    python server.py http PORT    streamable HTTP on 127.0.0.1:PORT/mcp; prints "ready" when listening
    python server.py stdio        newline-delimited JSON-RPC on stdin/stdout
"""
import asyncio
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


if __name__ == "__main__":
    mcp.run(transport="streamable-http" if sys.argv[1] == "http" else "stdio")
