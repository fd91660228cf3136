//! The demo MCP server (`airlock demo-upstream`): Telegram-like tools for trying Airlock out.
