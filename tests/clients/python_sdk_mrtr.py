"""A 2026-07-28 agent on the official MCP Python SDK (2.x) that answers input requests, talking
to Airlock in front of the conformance fixture (a 2026-07-28 upstream).

Usage: python_sdk_mrtr.py URL TOKEN
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
    """The user's side of an elicitation: a name when asked for one, a yes to a confirmation."""
    asked.append(params.message)
    if "name" in params.message.lower():
        return types.ElicitResult(action="accept", content={"name": "Alice"})
    return types.ElicitResult(action="accept", content={"ok": True})


async def main(url: str, token: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120)
    seen = {}
    client = Client(
        streamable_http_client(url, http_client=http),
        mode="2026-07-28",
        elicitation_callback=answer,
    )
    async with client:
        tools = await client.list_tools()
        seen["tools"] = sorted(tool.name for tool in tools.tools)
        simple = await client.call_tool("test_simple_text", {})
        seen["simple"] = simple.content[0].text
        # The upstream asks for a name (an InputRequiredResult); the SDK asks the user and
        # calls again with the answer.
        greeted = await client.call_tool("test_input_required_result_elicitation", {})
        seen["greeted"] = greeted.content[0].text
        # Needs approval first (the test approves it through Airlock's API); then the
        # upstream asks for a confirmation and the SDK's retry, carrying the requestState, is
        # the approved call going on.
        confirmed = await client.call_tool("test_input_required_result_request_state", {})
        seen["confirmed"] = {
            "is_error": bool(confirmed.is_error),
            "text": confirmed.content[0].text,
        }
    seen["asked"] = asked
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
