// Drives a running `difftx serve` through the official OpenAI Node SDK (npm package openai,
// pinned and installed by scripts/fetch-openai-sdk.sh): models, completions, chat, streaming
// of both with usage, log probabilities, and errors surfacing as the SDK's error classes.
// Asserts on every answer; prints one JSON summary line; exit code 0 only if all held.
//
//   node tests/serve/openai_client.cjs <base_url, e.g. http://127.0.0.1:8080/v1> <model> [api_key]
// The SDK is loaded from $DIFFTX_NPM_DIR/node_modules/openai (default <repo>/data/npm).
'use strict';
const path = require('path');
const assert = require('assert/strict');

const npmDir = process.env.DIFFTX_NPM_DIR || path.join(__dirname, '..', '..', 'data', 'npm');
let OpenAI;
try {
  OpenAI = require(path.join(npmDir, 'node_modules', 'openai')).default;
} catch (e) {
  console.error(`openai_client: error: the openai SDK is not installed in ${npmDir}: run scripts/fetch-openai-sdk.sh`);
  process.exit(3);
}

async function collect(stream, field) {
  let text = '';
  let usage = null;
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    const c = chunk.choices[0];
    text += field(c) || '';
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, usage, finish, chunks };
}

async function expectStatus(promise, status, cls) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor && e.constructor.name}`);
    assert.equal(e.status, status);
    assert.equal(typeof e.message, 'string');
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

async function main() {
  const [baseURL, model, apiKey] = process.argv.slice(2);
  assert.ok(baseURL && model, 'usage: openai_client.cjs <base_url> <model> [api_key]');
  const client = new OpenAI({ baseURL, apiKey: apiKey || 'unused', timeout: 60000, maxRetries: 0 });
  const summary = {};

  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === model), 'the served model is listed');

  // Completions, then the same request streamed: identical text and usage (greedy).
  const request = { model, prompt: 'the cat sees', max_tokens: 12, temperature: 0 };
  const c = await client.completions.create(request);
  assert.equal(c.object, 'text_completion');
  assert.equal(c.choices.length, 1);
  assert.ok(['length', 'stop'].includes(c.choices[0].finish_reason));
  assert.ok(c.usage.completion_tokens >= 1 && c.usage.completion_tokens <= 12);
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);
  const cs = await collect(
    await client.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }),
    (ch) => ch.text);
  assert.equal(cs.text, c.choices[0].text, 'streamed completion text equals the non-streamed one');
  assert.deepEqual(cs.usage, c.usage);
  assert.equal(cs.finish, c.choices[0].finish_reason);
  summary.completion = c.choices[0].text;

  // Chat, then streamed.
  const messages = [{ role: 'system', content: 'Answer briefly.' }, { role: 'user', content: 'the dog' }];
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(typeof chat.choices[0].message.content, 'string');
  const chs = await collect(
    await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0, stream: true,
                                           stream_options: { include_usage: true } }),
    (ch) => ch.delta.content);
  assert.equal(chs.text, chat.choices[0].message.content, 'streamed chat text equals the non-streamed one');
  assert.deepEqual(chs.usage, chat.usage);
  summary.chat = chat.choices[0].message.content;
  summary.chat_chunks = chs.chunks;

  // Sampling with a seed is reproducible; log probabilities come per token.
  const seeded = { model, prompt: 'a dog', max_tokens: 8, temperature: 0.9, top_p: 0.95, seed: 1234 };
  const s1 = await client.completions.create(seeded);
  const s2 = await client.completions.create(seeded);
  assert.equal(s1.choices[0].text, s2.choices[0].text, 'same seed, same text');
  const lp = await client.chat.completions.create({ model, messages, max_tokens: 4, temperature: 0, logprobs: true,
                                                    top_logprobs: 2 });
  assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
  for (const entry of lp.choices[0].logprobs.content) {
    assert.ok(entry.logprob <= 0);
    assert.equal(entry.top_logprobs.length, 2);
    assert.ok(Array.isArray(entry.bytes));
  }
  const two = await client.completions.create({ model, prompt: 'the river', max_tokens: 4, n: 2, seed: 5 });
  assert.equal(two.choices.length, 2);
  assert.deepEqual(two.choices.map((x) => x.index), [0, 1]);

  // Errors arrive as the SDK's typed errors with OpenAI error bodies.
  await expectStatus(client.completions.create({ model, prompt: 'x', max_tokens: -1 }), 400, OpenAI.BadRequestError);
  await expectStatus(client.completions.create({ model: 'no-such-model', prompt: 'x' }), 404, OpenAI.NotFoundError);
  await expectStatus(client.chat.completions.create({ model, messages: [] }), 400, OpenAI.BadRequestError);

  console.log(JSON.stringify(summary));
}

main().catch((e) => {
  console.error('openai_client: error:', (e && e.stack) || e);
  process.exit(1);
});
