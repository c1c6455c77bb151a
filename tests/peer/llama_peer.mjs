// llama.cpp (through the npm package node-llama-cpp) as a peer for brigade's
// tokenizer, greedy decoding and single-stream speed. Run by peer_test.py and
// bench/engine_bench.py; docs/benchmarks.md says how the peer is built.
//
// usage: node llama_peer.mjs MODEL.gguf tokenize        < JSON array of strings
//        node llama_peer.mjs MODEL.gguf greedy-ids N THREADS < JSON {"inputs": [[id, ...], ...]}
//          (greedy continuation of raw ids, BOS included by the caller: [{tokens, text}])
//        node llama_peer.mjs VOCAB.gguf vocab-tokenize [special] < JSON array of strings
//          (vocabulary only; "special" parses control-token text)
//        node llama_peer.mjs - vocab-tokenize-many JOBS.json OUT.json
//          (JOBS: [{"file", "texts", "special"}, ...]; OUT: one id list per text per job)
//        node llama_peer.mjs MODEL.gguf greedy N THREADS < JSON {"prompts": ["...", ...]}
//        node llama_peer.mjs MODEL.gguf bench N THREADS PROMPT_TOKENS
// Prints one JSON value on stdout.
import {getLlama} from "node-llama-cpp";
import {readFileSync, writeFileSync} from "node:fs";

const [file, command, ...args] = process.argv.slice(2);
// llama.cpp's own timing lines (llama_perf_context_print) arrive through the logger.
const logLines = [];
const llama = await getLlama({gpu: false, build: "never", logLevel: "info",
                              logger: (level, message) => { logLines.push(message); }});
if (command === "vocab-tokenize-many") {
  // Many vocabularies in one process: [{file, texts, special}] -> [[ids...]...].
  const jobs = JSON.parse(readFileSync(args[0], "utf8"));
  const results = [];
  for (const job of jobs) {
    const m = await llama.loadModel({modelPath: job.file, gpuLayers: 0, vocabOnly: true});
    results.push(job.texts.map((t) => Array.from(m.tokenize(t, Boolean(job.special)))));
    await m.dispose();
  }
  writeFileSync(args[1], JSON.stringify(results));
  process.exit(0);
}
const model = await llama.loadModel({modelPath: file, gpuLayers: 0, vocabOnly: command === "vocab-tokenize"});

async function context(threads) {
  // F32 KV cache: brigade's CPU cache is F32, so only the weights' rounding differs.
  return model.createContext({contextSize: 512, threads, batchSize: 512,
                              experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
}

if (command === "tokenize") {
  const texts = JSON.parse(readFileSync(0, "utf8"));
  console.log(JSON.stringify(texts.map((t) => Array.from(model.tokenize(t, false)))));
} else if (command === "vocab-tokenize") {
  const texts = JSON.parse(readFileSync(0, "utf8"));
  const special = args[0] === "special";
  console.log(JSON.stringify(texts.map((t) => Array.from(model.tokenize(t, special)))));
} else if (command === "greedy-ids") {
  // Greedy continuation of raw token ids (BOS included by the caller).
  const n = Number(args[0]);
  const {inputs} = JSON.parse(readFileSync(0, "utf8"));
  const ctx = await context(Number(args[1]));
  const results = [];
  for (const input of inputs) {
    const seq = ctx.getSequence();
    const tokens = [];
    for await (const t of seq.evaluate(input, {temperature: 0, yieldEogToken: true})) {
      tokens.push(t);
      if (tokens.length >= n || model.isEogToken(t)) break;
    }
    results.push({tokens, text: model.detokenize(tokens.filter((t) => !model.isEogToken(t)))});
    seq.dispose();
  }
  console.log(JSON.stringify(results));
} else if (command === "greedy") {
  const n = Number(args[0]);
  const {prompts} = JSON.parse(readFileSync(0, "utf8"));
  const ctx = await context(Number(args[1]));
  const results = [];
  for (const prompt of prompts) {
    const seq = ctx.getSequence();
    const input = [model.tokens.bos, ...model.tokenize(prompt, false)];
    const tokens = [], top2 = [];
    const gen = seq.evaluateWithMetadata(input, {probabilities: true}, {temperature: 0, yieldEogToken: true});
    for await (const out of gen) {
      const probs = [...out.probabilities.entries()].sort((a, b) => b[1] - a[1]);
      tokens.push(out.token);
      top2.push(probs.slice(0, 2));
      if (tokens.length >= n) break;
    }
    results.push({prompt, prompt_tokens: input, tokens, top2});
    seq.dispose();
  }
  console.log(JSON.stringify(results));
} else if (command === "bench") {
  // Single-stream greedy decode. Reports llama.cpp's own decode time
  // (llama_perf "eval time": time inside llama_decode, without the Node.js
  // binding's per-token overhead) and the wall-clock rate through the binding.
  const [n, threads, promptTokens] = args.map(Number);
  const ctx = await model.createContext({contextSize: 512, threads, batchSize: 512, performanceTracking: true,
                                         experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
  const seq = ctx.getSequence();
  const input = [model.tokens.bos];
  for (let i = 0; input.length < promptTokens; i++) input.push(3 + ((i * 7919) % 250));
  let count = 0, t0 = 0;
  const warmup = 4;
  for await (const token of seq.evaluate(input, {temperature: 0})) {
    count++;
    if (count === warmup) {
      t0 = performance.now();
      await ctx.printTimings();  // resets llama.cpp's counters: the warm-up is not counted
      logLines.length = 0;
    }
    if (count >= warmup + n) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  await ctx.printTimings();
  const evalLine = logLines.find((l) => /\beval time\b/.test(l) && !/prompt eval/.test(l)) ?? "";
  const m = evalLine.match(/eval time =\s*([0-9.]+) ms \/\s*([0-9]+) (?:runs|tokens)/);
  const native = m ? Number(m[2]) / (Number(m[1]) / 1000) : null;
  console.log(JSON.stringify({tokens_per_second: native, wall_tokens_per_second: n / seconds, tokens: n,
                              threads, llama_perf: evalLine.trim()}));
} else {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
await model.dispose();
