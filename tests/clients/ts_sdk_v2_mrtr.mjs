// A 2026-07-28 agent on the official MCP TypeScript SDK v2 (`@modelcontextprotocol/client`,
// the release line that speaks 2026-07-28), pinned to that revision, answering the input
// requests of multi-round-trip results through its `elicitation/create` handler (the SDK
// fulfils them and calls again on its own), talking to Airlock in front of the conformance
// fixture.
//
// Usage: node ts_sdk_v2_mrtr.mjs URL TOKEN
// Prints one JSON object describing what the client saw; the Rust test asserts on it.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, token] = process.argv.slice(2);
const asked = [];
const client = new Client(
  { name: "airlock-test-ts-v2-agent", version: "1.0.0" },
  {
    capabilities: { elicitation: {} },
    versionNegotiation: { mode: { pin: "2026-07-28" } },
  },
);
client.setRequestHandler("elicitation/create", async (request) => {
  const message = request.params?.message ?? "";
  asked.push(message);
  return message.toLowerCase().includes("name")
    ? { action: "accept", content: { name: "Alice" } }
    : { action: "accept", content: { ok: true } };
});
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);

const text = (result) => result.content?.[0]?.text ?? "";
const seen = {};
const tools = await client.listTools();
seen.tools = tools.tools.map((tool) => tool.name).sort();
seen.simple = text(await client.callTool({ name: "test_simple_text", arguments: {} }));
seen.greeted = text(
  await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} }),
);
// Needs approval first (the test approves it through Airlock's API); a long request timeout, as
// a human decides.
const confirmed = await client.callTool(
  { name: "test_input_required_result_request_state", arguments: {} },
  { timeout: 120000 },
);
seen.confirmed = { is_error: confirmed.isError === true, text: text(confirmed) };
seen.asked = asked;
console.log(JSON.stringify(seen));
await client.close();
