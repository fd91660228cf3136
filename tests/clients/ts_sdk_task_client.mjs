// An agent built on the official MCP TypeScript SDK that asks for a tool call as an MCP task
// (2025-11-25), with the SDK's own task support: `client.experimental.tasks.callToolStream`, which
// creates the task, polls `tasks/get` at the server's `pollInterval` and takes `tasks/result`.
//
// Usage: node ts_sdk_task_client.mjs URL TOKEN TOOL ARGS_JSON
// Prints one JSON line per message the SDK yields: {"type":"taskCreated","taskId",...},
// {"type":"taskStatus","status",...}, then {"type":"result","is_error","text"} or
// {"type":"error","error"}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, tool, argsJson] = process.argv.slice(2);
const client = new Client({ name: "airlock-test-task-agent", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);

const print = (line) => console.log(JSON.stringify(line));
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: JSON.parse(argsJson) },
  undefined,
  { task: { ttl: 60000 } },
);
for await (const message of stream) {
  switch (message.type) {
    case "taskCreated":
      print({ type: "taskCreated", taskId: message.task.taskId, status: message.task.status, statusMessage: message.task.statusMessage });
      break;
    case "taskStatus":
      print({ type: "taskStatus", status: message.task.status, statusMessage: message.task.statusMessage });
      break;
    case "result":
      print({ type: "result", is_error: message.result.isError === true, text: message.result.content?.[0]?.text ?? "" });
      break;
    case "error":
      print({ type: "error", error: String(message.error?.message ?? message.error) });
      break;
  }
}
await client.close();
