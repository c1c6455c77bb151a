#!/usr/bin/env node
// brigade's OpenAI-compatible HTTP API driven by a client nobody here wrote:
// the official OpenAI SDK for Node (npm `openai`, pinned by npm_install.sh),
// against real `brigade serve` processes on loopback (CTest label `api`).
//
// Checks, each printed as `ok:` or `FAIL:` with what was expected and got:
//   chat: temperature-0 non-streaming and streaming replies are the same text;
//     the stream's first delta has role "assistant", its last choice chunk a
//     finish_reason, include_usage a final usage chunk; content parts equal a
//     string; max_tokens above the server cap (--max-tokens 64) is clamped;
//   completions with a raw prompt; models.list / retrieve / unknown id;
//   durable sessions (X-Brigade-Session/-Token/-Seq, Idempotency-Key): replay
//     without a model run, history, missing seq, wrong token, a seq gap, the
//     same seq sent twice at once (the SDK retries the 409) adds one turn;
//   errors as the SDK's classes: wrong API key, tools, unknown model,
//     overload (429 RateLimitError with Retry-After, the others complete);
//   an aborted stream is cancelled (client_gone metric, generation stops)
//     and the node still serves; SIGTERM mid-stream ends the stream with an
//     error event (the SDK's iteration throws) and the node exits 0;
//   64 concurrent streaming clients all finish.
//
// usage: node sdk_test.mjs BRIGADE
//   BRIGADE_NODE_MODULES: the node_modules holding openai (default: what
//   npm_install.sh beside this file prints; it installs once into a cache).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const HERE = dirname(fileURLToPath(import.meta.url));
const BRIGADE = process.argv[2] ? resolve(process.argv[2]) : null;
if (!BRIGADE) {
  console.error("usage: node sdk_test.mjs BRIGADE");
  process.exit(2);
}
const NODE_MODULES = process.env.BRIGADE_NODE_MODULES ||
  execFileSync("bash", [join(HERE, "npm_install.sh")], { stdio: ["ignore", "pipe", "inherit"] }).toString().trim();
const sdk = await import(pathToFileURL(join(NODE_MODULES, "openai", "index.mjs")).href);
const OpenAI = sdk.default;
const { APIError, AuthenticationError, BadRequestError, NotFoundError, RateLimitError } = sdk;

const KEY = "sk-brigade-test-" + Math.random().toString(36).slice(2);
const T0 = Date.now();
const failures = [];
const nodes = []; // every node process, killed at exit whatever happens
const TMP = mkdtempSync(join(tmpdir(), "brigade-api-"));

function cleanup() {
  for (const n of nodes) if (n.alive()) n.proc.kill("SIGKILL");
  rmSync(TMP, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(1); });

// A hung request must not hang the test: fail it as a whole after 240 s.
const WATCHDOG_S = 240;
setTimeout(() => {
  console.log(`FAIL: the test ran past ${WATCHDOG_S} s (a request hung); failures so far: ${JSON.stringify(failures)}`);
  for (const n of nodes) if (n.stderr.trim()) console.log(`--- ${n.name} stderr (tail):\n${n.stderr.slice(-1500)}`);
  process.exit(1);
}, WATCHDOG_S * 1000).unref();

function check(cond, what, detail = "") {
  if (cond) {
    console.log("ok:", what);
  } else {
    failures.push(what);
    console.log("FAIL:", what, detail ? `(${detail})` : "");
  }
  return !!cond;
}

// A section that throws (a request failed where none should) is one failure;
// the other sections still run.
async function section(name, fn) {
  const t = Date.now();
  console.log(`-- ${name}`);
  try {
    await fn();
  } catch (e) {
    check(false, `${name}: unexpected exception`, describe(e));
  }
  console.log(`   (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

function describe(e) {
  if (e instanceof APIError) {
    return `${e.constructor.name} status=${e.status} type=${e.type} code=${e.code} param=${e.param}: ${e.message}`;
  }
  return `${e?.constructor?.name}: ${e?.message}${e?.cause ? " cause: " + e.cause : ""}`;
}

// Runs fn, which must throw an instance of cls (the SDK's class for the status).
async function expectError(what, cls, fn) {
  try {
    const r = await fn();
    check(false, `${what}: raises ${cls.name}`, `the request succeeded: ${JSON.stringify(r).slice(0, 300)}`);
    return null;
  } catch (e) {
    check(e instanceof cls, `${what}: raises ${cls.name}`, `got ${describe(e)}`);
    return e;
  }
}

function runQuiet(args) {
  execFileSync(BRIGADE, args, { stdio: ["ignore", "ignore", "pipe"] });
}

class Node {
  // Starts `brigade serve` on free ports and waits for its listening line.
  static async start(name, flags) {
    const n = new Node();
    n.name = name;
    n.stderr = "";
    n.exit = null;
    n.proc = spawn(BRIGADE, ["serve", "--port", "0", "--metrics-port", "0", ...flags],
                   { stdio: ["ignore", "pipe", "pipe"] });
    nodes.push(n);
    n.exited = new Promise((res) => n.proc.on("exit", (code, signal) => { n.exit = { code, signal }; res(n.exit); }));
    n.proc.stderr.on("data", (d) => { n.stderr = (n.stderr + d).slice(-4000); });
    const line = await new Promise((res, rej) => {
      let out = "";
      const timer = setTimeout(() => rej(new Error(`${name}: no listening line within 60 s; stderr: ${n.stderr}`)), 60000);
      n.proc.stdout.on("data", (d) => {
        out += d;
        const nl = out.indexOf("\n");
        if (nl >= 0) { clearTimeout(timer); res(out.slice(0, nl)); }
      });
      n.exited.then((x) => { clearTimeout(timer); rej(new Error(`${name}: exited before listening (${JSON.stringify(x)}); stderr: ${n.stderr}`)); });
    });
    n.proc.stdout.resume();
    const m = line.match(/^brigade: listening on (\S+):(\d+) metrics (\S+):(\d+) api (\S+):(\d+)\s*$/);
    if (!m) throw new Error(`${name}: unexpected first line ${JSON.stringify(line)} (want "brigade: listening on H:P metrics H:M api H:A")`);
    n.metricsURL = `http://${m[3]}:${m[4]}/metrics`;
    n.base = `http://${m[5]}:${m[6]}`;
    n.baseURL = `${n.base}/v1`;
    console.log(`   ${name}: api ${n.base}, metrics ${n.metricsURL}`);
    return n;
  }

  alive() { return this.exit === null; }

  client(opts = {}) {
    return new OpenAI({ baseURL: this.baseURL, apiKey: KEY, maxRetries: 0, timeout: 60000, ...opts });
  }

  // Sum of the samples of a metric that have the given labels (any order),
  // e.g. metric("brigade_requests_rejected_total", {reason: "client_gone"}).
  async metric(name, labels = {}) {
    const text = await (await fetch(this.metricsURL)).text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("#")) continue;
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
    }
    return total;
  }

  // Waits until a metric stops moving (two reads 200 ms apart agree).
  async settled(name, labels = {}) {
    let a = await this.metric(name, labels);
    for (let i = 0; i < 25; i++) {
      await sleep(200);
      const b = await this.metric(name, labels);
      if (b === a) return b;
      a = b;
    }
    return a;
  }

  // A plain HTTP request with the API key (for the routes the SDK has no method for).
  async http(method, path, body, headers = {}) {
    const res = await fetch(this.base + path, {
      method,
      headers: { Authorization: `Bearer ${KEY}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch {}
    return { status: res.status, headers: res.headers, text, json };
  }

  async stop(timeoutMs = 15000) {
    if (!this.alive()) return this.exit;
    this.proc.kill("SIGTERM");
    const r = await Promise.race([this.exited, sleep(timeoutMs).then(() => null)]);
    if (r === null) this.proc.kill("SIGKILL");
    return r;
  }
}

// Streams one chat request; returns the chunks, the text and the finish_reason.
async function streamChat(client, body, options) {
  const s = await client.chat.completions.create({ ...body, stream: true }, options);
  const chunks = [];
  for await (const ch of s) chunks.push(ch);
  const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
  const finish = chunks.map((c) => c.choices?.[0]?.finish_reason).filter((f) => f);
  return { chunks, text, finish };
}

function usageOk(u) {
  return u && Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0 && Number.isInteger(u.completion_tokens) &&
         u.total_tokens === u.prompt_tokens + u.completion_tokens;
}

// ---------------------------------------------------------------------------
const tinyModel = join(TMP, "tiny.gguf");
const smallModel = join(TMP, "small.gguf");
runQuiet(["model", "synth", "--preset", "tiny", "--seed", "7", "-o", tinyModel]);

let MODEL = null; // the id the node lists

const main = await Node.start("main", ["--api-key", KEY, "--max-tokens", "64", "--model", tinyModel]);
// The small model (for the slow streams) is written while the tiny node is tested.
const smallSynth = new Promise((res, rej) => {
  const p = spawn(BRIGADE, ["model", "synth", "--preset", "small", "--seed", "1", "--type", "f16", "-o", smallModel],
                  { stdio: ["ignore", "ignore", "inherit"] });
  p.on("exit", (code) => (code === 0 ? res() : rej(new Error(`model synth --preset small exited ${code}`))));
});
smallSynth.catch(() => {});
const api = main.client();

await section("models", async () => {
  const health = await fetch(`${main.base}/health`);
  check(health.status === 200, "GET /health without a key: 200", `got ${health.status}`);
  const list = await api.models.list();
  check(list.data.length === 1, "models.list() has one model", `got ${JSON.stringify(list.data)}`);
  const m = list.data[0];
  MODEL = m?.id;
  check(typeof MODEL === "string" && MODEL.length > 0, "the model has an id", JSON.stringify(m));
  check(m?.object === "model" && m?.owned_by === "brigade" && Number.isInteger(m?.created),
        'the model entry has object "model", owned_by "brigade", created', JSON.stringify(m));
  const r = await api.models.retrieve(MODEL);
  check(r.id === MODEL && r.object === "model", `models.retrieve(${JSON.stringify(MODEL)}) returns it`, JSON.stringify(r));
  const e = await expectError("models.retrieve of an unknown id", NotFoundError, () => api.models.retrieve("no-such-model-xyz"));
  check(e === null || e.status === 404, "unknown model id: status 404", e && describe(e));
  // The file's base name names the model too.
  const byFile = await api.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 4 });
  check(byFile.choices?.length === 1, 'model "tiny" (the file\'s base name) is accepted');
});
MODEL ??= "tiny";

await section("chat: non-streaming and streaming agree", async () => {
  const body = { model: MODEL, messages: [{ role: "system", content: "You are a waiter." },
                                          { role: "user", content: "Table four wants the soup" }],
                 max_tokens: 40, temperature: 0 };
  const r = await api.chat.completions.create(body);
  const text = r.choices?.[0]?.message?.content;
  check(r.object === "chat.completion" && typeof r.id === "string" && r.model === MODEL,
        'non-streaming: object "chat.completion", an id, the model', JSON.stringify({ object: r.object, id: r.id, model: r.model }));
  check(r.choices?.length === 1 && r.choices[0].index === 0 && r.choices[0].message.role === "assistant",
        "non-streaming: one choice, index 0, role assistant", JSON.stringify(r.choices));
  check(typeof text === "string" && text.length > 0, "non-streaming: non-empty text", JSON.stringify(text));
  check(["stop", "length"].includes(r.choices?.[0]?.finish_reason), "non-streaming: finish_reason stop or length",
        r.choices?.[0]?.finish_reason);
  check(usageOk(r.usage), "non-streaming: usage with prompt, completion and total tokens", JSON.stringify(r.usage));

  const s = await streamChat(api, { ...body, stream_options: { include_usage: true } });
  check(s.text === text, "streamed text equals the non-streamed text (temperature 0)",
        `stream ${JSON.stringify(s.text)} vs ${JSON.stringify(text)}`);
  check(s.chunks.length >= 2, "the stream has several chunks", `${s.chunks.length}`);
  check(s.chunks.every((c) => c.object === "chat.completion.chunk"), 'every chunk has object "chat.completion.chunk"',
        JSON.stringify(s.chunks.map((c) => c.object)));
  check(new Set(s.chunks.map((c) => c.id)).size === 1, "every chunk has the same id");
  check(s.chunks[0]?.choices?.[0]?.delta?.role === "assistant", 'the first delta has role "assistant"',
        JSON.stringify(s.chunks[0]));
  const withChoices = s.chunks.filter((c) => c.choices?.length > 0);
  const last = withChoices.at(-1);
  check(s.finish.length === 1 && last?.choices[0].finish_reason === r.choices[0].finish_reason,
        "one chunk, the last with a choice, carries the finish_reason (same as non-streaming)",
        `finish reasons ${JSON.stringify(s.finish)}, last choice chunk ${JSON.stringify(last)}`);
  const u = s.chunks.at(-1);
  check(u?.choices?.length === 0 && usageOk(u?.usage), "include_usage: a last chunk with empty choices and usage",
        JSON.stringify(u));
  check(u?.usage?.completion_tokens === r.usage?.completion_tokens && u?.usage?.prompt_tokens === r.usage?.prompt_tokens,
        "the stream's usage equals the non-streamed usage", `${JSON.stringify(u?.usage)} vs ${JSON.stringify(r.usage)}`);
  check(s.chunks.slice(0, -1).every((c) => c.usage == null), "only the usage chunk carries usage");

  const plain = await streamChat(api, body);
  check(plain.text === text, "a stream without stream_options gives the same text");
  check(plain.chunks.every((c) => c.usage == null), "without include_usage no chunk carries usage",
        JSON.stringify(plain.chunks.at(-1)));

  const parts = await api.chat.completions.create({ ...body, messages: [body.messages[0],
    { role: "user", content: [{ type: "text", text: "Table four " }, { type: "text", text: "wants the soup" }] }] });
  check(parts.choices?.[0]?.message?.content === text, "content as text parts gives the same reply as a string",
        `${JSON.stringify(parts.choices?.[0]?.message?.content)} vs ${JSON.stringify(text)}`);
});

await section("max_tokens above the server cap is clamped", async () => {
  for (const [field, value] of [["max_tokens", 1000], ["max_completion_tokens", 500]]) {
    const r = await api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Tell me everything" }],
                                                  [field]: value, temperature: 0 });
    const n = r.usage?.completion_tokens, f = r.choices?.[0]?.finish_reason;
    console.log(`   ${field} ${value}: ${n} tokens, finish_reason ${f}`);
    check(Number.isInteger(n) && n <= 64, `${field} ${value}: completion_tokens <= 64 (--max-tokens)`, `got ${n}`);
    check(n === 64 ? f === "length" : f === "stop", `${field} ${value}: finish_reason "length" at the cap, "stop" before`,
          `completion_tokens ${n}, finish_reason ${f}`);
    const s = await streamChat(api, { model: MODEL, messages: [{ role: "user", content: "Tell me everything" }],
                                      [field]: value, temperature: 0, stream_options: { include_usage: true } });
    check(s.chunks.at(-1)?.usage?.completion_tokens === n && s.finish[0] === f,
          `${field} ${value}, streamed: same clamp and finish_reason`, `${JSON.stringify(s.chunks.at(-1)?.usage)} ${s.finish}`);
  }
});

await section("completions with a raw prompt", async () => {
  const c = await api.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 16, temperature: 0 });
  check(c.object === "text_completion" && c.choices?.length === 1 && c.choices[0].index === 0,
        'completions: object "text_completion", one choice', JSON.stringify(c).slice(0, 300));
  check(typeof c.choices?.[0]?.text === "string" && c.choices[0].text.length > 0, "completions: non-empty text",
        JSON.stringify(c.choices?.[0]));
  check(["stop", "length"].includes(c.choices?.[0]?.finish_reason) && usageOk(c.usage),
        "completions: finish_reason and usage", JSON.stringify({ f: c.choices?.[0]?.finish_reason, u: c.usage }));
  const again = await api.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 16, temperature: 0 });
  check(again.choices?.[0]?.text === c.choices?.[0]?.text, "completions at temperature 0 repeat");
});

await section("durable sessions", async () => {
  const opened = await main.http("POST", "/v1/sessions", {});
  check(opened.status === 200 && typeof opened.json?.id === "string" && typeof opened.json?.token === "string",
        "POST /v1/sessions -> 200 {id, token}", `${opened.status} ${opened.text.slice(0, 300)}`);
  const { id, token } = opened.json ?? {};
  const seqHeaders = (seq) => ({ "X-Brigade-Session": id, "X-Brigade-Token": token, "X-Brigade-Seq": String(seq) });
  const turns = async () => {
    const h = await main.http("GET", `/v1/sessions/${id}`, undefined, { "X-Brigade-Token": token });
    check(h.status === 200 && Array.isArray(h.json?.turns), `GET /v1/sessions/{id}: 200 with turns`, `${h.status} ${h.text.slice(0, 300)}`);
    return h.json?.turns ?? [];
  };
  // temperature 1: a re-run would almost surely give another text.
  const ask = (content, headers, client = api) =>
    client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 24, temperature: 1 },
                                   { headers }).withResponse();

  const t1 = await ask("first message", seqHeaders(1));
  check(t1.response.headers.get("x-brigade-seq") === "1", "seq 1: response header X-Brigade-Seq: 1",
        `got ${t1.response.headers.get("x-brigade-seq")}`);
  const reply1 = t1.data.choices?.[0]?.message?.content;
  check(typeof reply1 === "string" && reply1.length > 0, "seq 1: a reply", JSON.stringify(reply1));

  const generated = await main.settled("brigade_tokens_generated_total");
  const t1again = await ask("first message", seqHeaders(1));
  check(t1again.data.choices?.[0]?.message?.content === reply1, "seq 1 sent again: the same reply text",
        `${JSON.stringify(t1again.data.choices?.[0]?.message?.content)} vs ${JSON.stringify(reply1)}`);
  check(t1again.data.usage?.completion_tokens === t1.data.usage?.completion_tokens,
        "seq 1 sent again: usage.completion_tokens as stored", `${JSON.stringify(t1again.data.usage)} vs ${JSON.stringify(t1.data.usage)}`);
  check(t1again.response.headers.get("x-brigade-seq") === "1", "seq 1 sent again: X-Brigade-Seq: 1");
  const generatedAfter = await main.settled("brigade_tokens_generated_total");
  check(generatedAfter === generated, "seq 1 sent again: no model run (brigade_tokens_generated_total unchanged)",
        `${generated} -> ${generatedAfter}`);

  const t2 = await ask("second message", seqHeaders(2));
  check(t2.response.headers.get("x-brigade-seq") === "2", "seq 2: X-Brigade-Seq: 2", `got ${t2.response.headers.get("x-brigade-seq")}`);
  const reply2 = t2.data.choices?.[0]?.message?.content;
  let h = await turns();
  check(h.length === 2, "the history lists exactly 2 turns", JSON.stringify(h).slice(0, 400));
  check(h[0]?.seq === 1 && h[0]?.user === "first message" && h[0]?.assistant === reply1 &&
        h[1]?.seq === 2 && h[1]?.user === "second message" && h[1]?.assistant === reply2,
        "the turns are seq 1 and 2 with their messages and replies", JSON.stringify(h).slice(0, 400));

  const key = { "X-Brigade-Session": id, "X-Brigade-Token": token, "Idempotency-Key": "idem-" + Math.random().toString(36).slice(2) };
  const k1 = await ask("third message", key);
  const k2 = await ask("third message", key);
  check(k1.data.choices?.[0]?.message?.content === k2.data.choices?.[0]?.message?.content,
        "Idempotency-Key sent twice: the same reply");
  check(k1.response.headers.get("x-brigade-seq") === "3" && k2.response.headers.get("x-brigade-seq") === "3",
        "Idempotency-Key: both answers say X-Brigade-Seq: 3",
        `${k1.response.headers.get("x-brigade-seq")}, ${k2.response.headers.get("x-brigade-seq")}`);
  h = await turns();
  check(h.length === 3, "Idempotency-Key sent twice adds exactly one turn", `${h.length} turns`);

  await expectError("a session request with neither seq nor key", BadRequestError,
                    () => ask("no seq", { "X-Brigade-Session": id, "X-Brigade-Token": token }));
  const wrong = await expectError("a session request with a wrong token", AuthenticationError,
                                  () => ask("wrong token", { ...seqHeaders(4), "X-Brigade-Token": token + "x" }));
  check(wrong === null || wrong.code === "invalid_session", 'wrong token: code "invalid_session"', wrong && describe(wrong));
  const unknown = await expectError("a request for an unknown session", AuthenticationError,
                                    () => ask("unknown", { ...seqHeaders(4), "X-Brigade-Session": "no-such-session" }));
  check(wrong === null || unknown === null || wrong.message === unknown.message,
        "wrong token and unknown session say the same", `${wrong?.message} / ${unknown?.message}`);
  await expectError("a seq gap (9 after 3)", BadRequestError, () => ask("gap", seqHeaders(9)));
  h = await turns();
  check(h.length === 3, "refused requests add no turn", `${h.length} turns`);

  // The same seq twice at once: one is in flight when the other arrives
  // (409, x-should-retry: true); the SDK retries it and gets the replay.
  const retrying = main.client({ maxRetries: 6 });
  const both = await Promise.allSettled([ask("fourth message", seqHeaders(4), retrying),
                                         ask("fourth message", seqHeaders(4), retrying)]);
  check(both.every((p) => p.status === "fulfilled"), "the same seq sent twice at once: both succeed (409 retried)",
        both.map((p) => (p.status === "fulfilled" ? "ok" : describe(p.reason))).join("; "));
  if (both.every((p) => p.status === "fulfilled")) {
    check(both[0].value.data.choices[0].message.content === both[1].value.data.choices[0].message.content,
          "the same seq sent twice at once: the same reply");
  }
  const conflicts = await main.metric("brigade_http_requests_total", { route: "/v1/chat/completions", code: "409" });
  console.log(`   (${conflicts} answer(s) 409 so far: the SDK retried them)`);
  h = await turns();
  check(h.length === 4 && h.filter((t) => t.seq === 4).length === 1, "the same seq sent twice at once: one turn 4",
        JSON.stringify(h.map((t) => t.seq)));

  const del = await main.http("DELETE", `/v1/sessions/${id}`, undefined, { "X-Brigade-Token": token });
  check(del.status === 200 && del.json?.deleted === true, "DELETE /v1/sessions/{id}: deleted", `${del.status} ${del.text.slice(0, 200)}`);
  const gone = await main.http("GET", `/v1/sessions/${id}`, undefined, { "X-Brigade-Token": token });
  check(gone.status === 401, "a deleted session: 401", `${gone.status} ${gone.text.slice(0, 200)}`);
});

await section("errors as SDK classes", async () => {
  const bad = new OpenAI({ baseURL: main.baseURL, apiKey: "wrong-key", maxRetries: 0 });
  const e1 = await expectError("wrong API key", AuthenticationError,
    () => bad.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] }));
  check(e1 === null || (e1.type === "authentication_error" && e1.code === "invalid_api_key"),
        "wrong API key: type authentication_error, code invalid_api_key", e1 && describe(e1));
  await expectError("wrong API key on models.list", AuthenticationError, () => bad.models.list());
  const e2 = await expectError("tools", BadRequestError, () => api.chat.completions.create({
    model: MODEL, messages: [{ role: "user", content: "weather?" }],
    tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }] }));
  check(e2 === null || (e2.param === "tools" && e2.code === "unsupported_parameter" && e2.type === "invalid_request_error"),
        'tools: param "tools", code unsupported_parameter', e2 && describe(e2));
  const e3 = await expectError("unknown model", NotFoundError, () => api.chat.completions.create({
    model: "no-such-model", messages: [{ role: "user", content: "hi" }] }));
  check(e3 === null || (e3.code === "model_not_found" && e3.param === "model"),
        "unknown model: code model_not_found, param model", e3 && describe(e3));
});

await section("64 concurrent streaming clients", async () => {
  const t = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 64 }, (_, i) =>
    // Greedy: a sampled reply (OpenAI's default temperature 1) may end at once with EOS.
    streamChat(api, { model: MODEL, messages: [{ role: "user", content: `Guest ${i} orders dish number ${i * 7}` }],
                      max_tokens: 16, temperature: 0 })));
  const bad = results.map((r, i) => [r, i]).filter(([r]) =>
    r.status !== "fulfilled" || r.value.text.length === 0 || r.value.finish.length !== 1);
  check(bad.length === 0, "64 concurrent streams all finish with text and one finish_reason",
        bad.slice(0, 5).map(([r, i]) => `#${i}: ${r.status === "fulfilled" ? JSON.stringify({ text: r.value.text, finish: r.value.finish }) : describe(r.reason)}`).join("; ") +
        ` (${bad.length} bad)`);
  console.log(`   64 streams in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const ok200 = await main.metric("brigade_http_requests_total", { route: "/v1/chat/completions", code: "200" });
  check(ok200 >= 64, 'brigade_http_requests_total{route="/v1/chat/completions",code="200"} counts them', `${ok200}`);
});

await section("main node stops on SIGTERM", async () => {
  const r = await main.stop();
  check(r?.code === 0, "the node exits 0 on SIGTERM", JSON.stringify(r));
});

await section("overload: 429 RateLimitError, the others complete", async () => {
  const node = await Node.start("overload", ["--api-key", KEY, "--max-batch", "1", "--queue-limit", "1",
                                             "--max-tokens", "64", "--model", tinyModel]);
  const c = node.client();
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
    streamChat(c, { model: MODEL, messages: [{ role: "user", content: `Order ${i}` }], max_tokens: 64 })));
  const limited = results.filter((r) => r.status === "rejected" && r.reason instanceof RateLimitError);
  const other = results.filter((r) => r.status === "rejected" && !(r.reason instanceof RateLimitError));
  const done = results.filter((r) => r.status === "fulfilled");
  console.log(`   ${limited.length} refused, ${done.length} completed, ${other.length} other errors`);
  check(limited.length >= 1, "at least one of 20 concurrent streams gets RateLimitError (429)");
  check(other.length === 0, "no other errors", other.slice(0, 3).map((r) => describe(r.reason)).join("; "));
  check(done.every((r) => r.value.finish.length === 1), "every admitted stream ends with a finish_reason",
        done.filter((r) => r.value.finish.length !== 1).slice(0, 3).map((r) => JSON.stringify(r.value.chunks.at(-1))).join("; "));
  check(done.length >= 1, "some streams were admitted and completed");
  if (limited.length) {
    const e = limited[0].reason;
    const ra = e.headers?.get("retry-after");
    check(e.type === "rate_limit_error" && ra !== null && /^\d+$/.test(ra), "429: type rate_limit_error and Retry-After seconds",
          `${describe(e)} retry-after=${ra}`);
  }
  const overloaded = await node.metric("brigade_requests_rejected_total", { reason: "overloaded" });
  check(overloaded >= limited.length, 'brigade_requests_rejected_total{reason="overloaded"} counts the refusals',
        `${overloaded} < ${limited.length}`);
  const after = await c.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "after" }], max_tokens: 8 });
  check(after.choices?.[0]?.finish_reason != null, "after the overload a request is served");
  await node.stop();
});

await section("aborted stream and SIGTERM mid-stream (small model)", async () => {
  await smallSynth;
  const node = await Node.start("slow", ["--api-key", KEY, "--drain-grace", "300ms", "--max-tokens", "2000",
                                         "--model", smallModel]);
  const c = node.client();
  const list = await c.models.list();
  const model = list.data[0].id;
  const long = { model, messages: [{ role: "user", content: "Tell me a long story" }], max_tokens: 2000 };

  // An aborted stream: the turn is cancelled at once.
  const gone0 = await node.metric("brigade_requests_rejected_total", { reason: "client_gone" });
  const ac = new AbortController();
  const s = await c.chat.completions.create({ ...long, stream: true }, { signal: ac.signal });
  let n = 0, abortErr = null;
  try {
    for await (const _ of s) { if (++n === 1) ac.abort(); }
  } catch (e) {
    abortErr = e; // the SDK ends the iteration quietly on an abort; anything else is reported
  }
  check(n >= 1 && (abortErr === null || abortErr.name === "AbortError" || abortErr.constructor.name === "APIUserAbortError"),
        "the stream was aborted after its first chunk", abortErr && describe(abortErr));
  let gone = gone0;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && gone < gone0 + 1) {
    await sleep(100);
    gone = await node.metric("brigade_requests_rejected_total", { reason: "client_gone" });
  }
  check(gone >= gone0 + 1, 'brigade_requests_rejected_total{reason="client_gone"} counts it within 5 s', `${gone0} -> ${gone}`);
  const g1 = await node.metric("brigade_tokens_generated_total");
  await sleep(500);
  const g2 = await node.metric("brigade_tokens_generated_total");
  check(g2 === g1, "the aborted turn generates no more tokens", `${g1} -> ${g2} in 0.5 s`);
  check(g2 < 1500, "the aborted turn stopped well before max_tokens 2000", `${g2} tokens generated`);
  const after = await c.chat.completions.create({ ...long, max_tokens: 8 });
  check(after.choices?.[0]?.message?.content?.length > 0 && after.choices[0].finish_reason === "length",
        "after the abort a request is served", JSON.stringify(after.choices?.[0]));

  // SIGTERM while a stream runs: after --drain-grace the stream ends with an
  // error event (no [DONE]), which the SDK's iteration throws.
  const s2 = await c.chat.completions.create({ ...long, stream: true });
  let chunks = 0, finish = null, err = null, t = null;
  try {
    for await (const ch of s2) {
      if (++chunks === 1) { node.proc.kill("SIGTERM"); t = Date.now(); }
      finish ??= ch.choices?.[0]?.finish_reason ?? null;
    }
  } catch (e) {
    err = e;
  }
  const endedS = (Date.now() - t) / 1000;
  console.log(`   stream ended ${endedS.toFixed(2)} s after SIGTERM, ${chunks} chunks, ` +
              `finish_reason ${finish}, ${err ? describe(err) : "no exception"}`);
  // --drain-grace 300ms: the turn is cut then (1 s of slack for a loaded machine).
  check(endedS < 1.3, "SIGTERM mid-stream: the stream is cut within --drain-grace 300ms (+1 s slack)",
        `it ended ${endedS.toFixed(2)} s after SIGTERM`);
  check(finish === null, "the cut stream has no finish_reason", String(finish));
  check(err !== null, "SIGTERM mid-stream: the SDK's iteration throws",
        "the stream ended quietly: no error event, so the client cannot tell it from a complete reply");
  check(err === null || (err instanceof APIError && err.status === undefined && typeof err.error?.message === "string"),
        "SIGTERM mid-stream: it throws the stream's error event (APIError from data: {error})",
        err && `${describe(err)}${err.status === undefined ? "" : " (an HTTP status, not an event)"}`);
  if (err instanceof APIError) console.log(`   error event: type ${err.type}, code ${err.code}: ${err.error?.message}`);
  const exit = await Promise.race([node.exited, sleep(15000).then(() => null)]);
  check(exit?.code === 0, "the node exits 0 after SIGTERM", JSON.stringify(exit) + (exit ? "" : " still running after 15 s"));
  if (!exit) node.proc.kill("SIGKILL");
});

const secs = ((Date.now() - T0) / 1000).toFixed(1);
if (failures.length) {
  console.log(`\n${failures.length} FAILED (${secs} s):`);
  for (const f of failures) console.log("  -", f);
  for (const n of nodes) if (n.stderr.trim()) console.log(`--- ${n.name} stderr (tail):\n${n.stderr.slice(-1500)}`);
  process.exitCode = 1;
} else {
  console.log(`\nall passed (${secs} s)`);
}
cleanup();
process.exit(process.exitCode ?? 0);
