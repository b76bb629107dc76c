// ollama-js as Karakeep calls it: chat with `format` set to a JSON schema, streamed, with a small num_predict.
// Usage: node ollama_format.mjs <node_modules dir> <host> <model> <num_predict>; prints one JSON line of results.
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, host, model, numPredict] = process.argv.slice(2);
const require = createRequire(path.join(modulesDir, "noop.js"));
const { Ollama } = await import(require.resolve("ollama"));

const schema = {
  type: "object",
  properties: { tags: { type: "array", items: { type: "string" } } },
  required: ["tags"],
  additionalProperties: false,
  $schema: "http://json-schema.org/draft-07/schema#",
};
const client = new Ollama({ host });
const request = {
  model,
  format: schema,
  messages: [{ role: "user", content: "Suggest many tags for an article about cooking fresh pasta at home." }],
  options: { temperature: 0, num_predict: Number(numPredict) },
  keep_alive: "5m",
};
let streamed = "";
let last = null;
for await (const part of await client.chat({ ...request, stream: true })) {
  streamed += part.message.content;
  last = part;
}
const whole = await client.chat({ ...request, stream: false });
const generated = await client.generate({
  model, prompt: "Give a JSON object with a key name.", format: "json", stream: false,
  options: { temperature: 0, num_predict: Number(numPredict) },
});
console.log(JSON.stringify({
  streamed, streamedReason: last.done_reason, streamedClosedEarly: last.closed_early ?? false,
  whole: whole.message.content, wholeReason: whole.done_reason, generated: generated.response,
  schema,
}));
