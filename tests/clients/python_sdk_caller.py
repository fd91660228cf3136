"""An agent built on the official MCP Python SDK (2.x) with its default options, calling one tool
through Airlock, and calling it again each time the test asks.

Usage: python_sdk_caller.py URL TOKEN MODE TOOL ARGS_JSON   (MODE: legacy | 2026-07-28 | auto)
Calls TOOL once and prints one JSON line {"is_error", "text", "seconds"} (or {"error", ...} when
the SDK itself failed); then, for each line read on stdin, calls it again and prints another.
Ends when stdin closes.
"""

import asyncio
import json
import sys
import time

from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def call_once(client: Client, tool: str, arguments: dict) -> dict:
    started = time.monotonic()
    try:
        result = await client.call_tool(tool, arguments)
        text = result.content[0].text if result.content else ""
        return {"is_error": bool(result.is_error), "text": text, "seconds": time.monotonic() - started}
    except Exception as e:  # the SDK's own failure (a timeout, a closed stream) is what we report
        return {"error": repr(e), "seconds": time.monotonic() - started}


async def main(url: str, token: str, mode: str, tool: str, args_json: str) -> None:
    arguments = json.loads(args_json)
    # The SDK's own client (its default timeouts), with the agent's token.
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    loop = asyncio.get_running_loop()
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        print(json.dumps(await call_once(client, tool, arguments)), flush=True)
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(json.dumps(await call_once(client, tool, arguments)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
