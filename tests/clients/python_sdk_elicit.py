"""A 2026-07-28 agent on the official MCP Python SDK (2.x) calling a tool whose handshake-era
upstream elicits mid-call: Airlock asks it as an input request, the SDK asks the user and calls
again.

Usage: python_sdk_elicit.py URL TOKEN
Prints one JSON object describing what the client saw; the Rust test asserts on it.
"""

import asyncio
import json
import sys

import httpx2
import mcp.types as types
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

asked = []


async def answer(context, params):
    """The user's side of the elicitation."""
    asked.append(params.message)
    return types.ElicitResult(action="accept", content={"response": "Alice"})


async def main(url: str, token: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    client = Client(
        streamable_http_client(url, http_client=http),
        mode="2026-07-28",
        elicitation_callback=answer,
    )
    async with client:
        result = await client.call_tool("test_elicitation", {"message": "Your name?"})
    print(json.dumps({"text": result.content[0].text, "asked": asked}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
