"""An agent built on the official MCP Python SDK (2.x), talking to Airlock.

Usage: python_sdk_client.py URL TOKEN MODE   (MODE: legacy | 2026-07-28 | auto)
Prints one JSON object describing what the client saw; the Rust test asserts on it.
"""

import asyncio
import json
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    seen = {}
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        tools = await client.list_tools()
        seen["tools"] = sorted(tool.name for tool in tools.tools)
        chats = await client.call_tool("get_chats", {"limit": 2})
        seen["get_chats"] = {"is_error": bool(chats.is_error), "text": chats.content[0].text}
        denied = await client.call_tool("delete_chat", {"chat_id": 777000})
        seen["delete_chat"] = {"is_error": bool(denied.is_error), "text": denied.content[0].text}
        slow = await client.call_tool("slow_task", {"steps": 2, "step_ms": 10})
        seen["slow_task"] = slow.content[0].text
        # Needs approval: waits until the test approves it through Airlock's API.
        exported = await client.call_tool("export_session", {})
        seen["export_session"] = {
            "is_error": bool(exported.is_error),
            "text": exported.content[0].text,
        }
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
