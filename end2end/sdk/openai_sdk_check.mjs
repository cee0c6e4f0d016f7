// Drives a running Workjet with the official OpenAI Node SDK (the `openai` npm package in the
// top-level package.json) and prints one JSON object with what happened. Called by
// tests/integration/sdk.rs; arguments come as environment variables so that no key appears
// on a command line.
import OpenAI from "openai";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const baseURL = env("WJ_SDK_BASE_URL");
const results = { sdk_version: OpenAI.VERSION ?? null };

// No automatic retries unless asked: each call shows exactly what the server answered.
const client = (apiKey, options = {}) => new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 30_000, ...options });

async function outcome(fn) {
  try {
    return { ok: await fn() };
  } catch (e) {
    if (e instanceof OpenAI.APIError) {
      return { error: e.constructor.name, status: e.status ?? null, code: e.code ?? null, type: e.type ?? null };
    }
    return { error: String(e?.stack ?? e) };
  }
}

const good = client(env("WJ_SDK_KEY"));
const model = env("WJ_SDK_MODEL");

results.models = await outcome(async () => {
  const ids = [];
  for await (const m of good.models.list()) ids.push(m.id);
  return ids;
});
results.chat = await outcome(async () => {
  const reply = await good.chat.completions.create({ model, messages: [{ role: "user", content: "Hello, world!" }] });
  return reply.choices[0].message.content;
});
results.stream = await outcome(async () => {
  const stream = await good.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hello" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices?.[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage.total_tokens;
  }
  return { text, usage };
});
results.anthropic_stream = await outcome(async () => {
  const stream = await good.chat.completions.create({
    model: env("WJ_SDK_ANTHROPIC_MODEL"),
    messages: [{ role: "user", content: "Hi" }],
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? "";
  return text;
});
results.missing_model = await outcome(async () =>
  (await good.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })).id,
);
results.revoked = await outcome(async () => (await client(env("WJ_SDK_REVOKED_KEY")).models.list()).data.map((m) => m.id));
results.restricted = await outcome(async () => (await client(env("WJ_SDK_RESTRICTED_KEY")).models.list()).data.map((m) => m.id));

// Rate limiting: spend the limited key's burst without retries until the server says 429,
// then let the SDK retry by itself and watch it wait for Retry-After and succeed.
const limitedKey = env("WJ_SDK_LIMITED_KEY");
const noRetry = client(limitedKey);
let spent = 0;
let refused = null;
for (let i = 0; i < 1000 && !refused; i++) {
  const r = await outcome(async () => (await noRetry.models.list()).data.length);
  if (r.error) refused = r;
  else spent++;
}
results.limited_spent = spent;
results.limited_refused = refused;
const seen = [];
const recordingFetch = async (url, init) => {
  const response = await fetch(url, init);
  seen.push({
    status: response.status,
    retry_after: response.headers.get("retry-after"),
    retry_after_ms: response.headers.get("retry-after-ms"),
    retry_count: new Headers(init?.headers).get("x-stainless-retry-count"),
  });
  return response;
};
const retrying = client(limitedKey, { maxRetries: 3, fetch: recordingFetch });
const started = Date.now();
results.limited_retried = await outcome(async () => (await retrying.models.list()).data.length);
results.limited_retried_ms = Date.now() - started;
results.limited_attempts = seen;

console.log(JSON.stringify(results));
