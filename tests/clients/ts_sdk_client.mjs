// An agent built on the official MCP TypeScript SDK with its default options (a 60 s request
// timeout, no progress handler), as most agents ship it, calling a tool through Airlock.
//
// Usage: node ts_sdk_client.mjs URL TOKEN TOOL ARGS_JSON
// Calls TOOL once and prints one JSON line {"is_error", "text", "seconds"} (or {"error", ...} when
// the SDK itself failed, e.g. timed out); then, for each line read on stdin, calls it again and
// prints another. Ends when stdin closes.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, tool, argsJson] = process.argv.slice(2);
const client = new Client({ name: "airlock-test-ts-agent", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);

async function callOnce() {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  try {
    const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) });
    const text = result.content?.[0]?.text ?? "";
    return { is_error: result.isError === true, text, seconds: seconds() };
  } catch (e) {
    return { error: String(e?.message ?? e), seconds: seconds() };
  }
}

console.log(JSON.stringify(await callOnce()));
for await (const _line of createInterface({ input: process.stdin })) {
  console.log(JSON.stringify(await callOnce()));
}
await client.close();
