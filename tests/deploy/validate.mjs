// Validates rendered Kubernetes manifests offline, each document against its
// schema (kubernetes-models, @kubernetes-models/keda and
// /prometheus-operator: types and required fields), then every document
// through the TypeScript compiler against the same models' interfaces, which
// catches unknown or misspelt fields (tsc reports the first per document).
//
// usage: node validate.mjs NODE_MODULES FILE.yaml...
// Prints one line per document; exit 1 when any document fails, naming it.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: node validate.mjs NODE_MODULES FILE.yaml...");
  process.exit(2);
}
const nodeModules = resolve(modules);
const require = createRequire(join(nodeModules, "x.js"));
const { parseAllDocuments } = require("yaml");

// apiVersion -> the module folder of its models.
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "keda.sh") return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  if (group === "monitoring.coreos.com") return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

let failures = 0;
const docs = [];
for (const file of files) {
  const parsed = parseAllDocuments(readFileSync(file, "utf8"));
  parsed.forEach((d, i) => {
    const where = `${file}#${i + 1}`;
    if (d.errors.length) {
      console.log(`FAIL ${where}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      failures++;
      return;
    }
    const obj = d.toJS();
    if (obj === null || obj === undefined) return;  // an empty document
    if (!obj.apiVersion || !obj.kind) {
      console.log(`FAIL ${where}: no apiVersion or kind`);
      failures++;
      return;
    }
    docs.push({ where, obj, name: `${obj.kind}/${obj.metadata?.name ?? "?"}` });
  });
}

// 1. The JSON schemas.
for (const d of docs) {
  const path = modelPath(d.obj.apiVersion, d.obj.kind);
  let Model;
  try {
    const mod = await import(pathToFileURL(require.resolve(path)).href);
    Model = mod[d.obj.kind] ?? mod.default?.[d.obj.kind];
    if (typeof Model !== "function") throw new Error(`the module has no ${d.obj.kind}`);
  } catch (e) {
    console.log(`FAIL ${d.where} ${d.name}: no schema for ${d.obj.apiVersion} ${d.obj.kind} (${e.message})`);
    failures++;
    continue;
  }
  try {
    new Model(d.obj).validate();
    d.schemaOk = true;
  } catch (e) {
    console.log(`FAIL ${d.where} ${d.name}: schema: ${e.message}`);
    failures++;
  }
}

// 2. Unknown fields: each document as a typed constant.
const dir = mkdtempSync(join(tmpdir(), "brigade-validate-"));
try {
  symlinkSync(nodeModules, join(dir, "node_modules"));
  writeFileSync(join(dir, "package.json"), '{"type":"module"}\n');
  const lines = [];
  docs.forEach((d, i) => {
    lines.push(`import type { I${d.obj.kind} as T${i} } from "${modelPath(d.obj.apiVersion, d.obj.kind)}";`);
  });
  const offsets = [];
  docs.forEach((d, i) => {
    offsets.push(lines.length + 1);
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(d.obj)};`);
  });
  writeFileSync(join(dir, "manifests.ts"), lines.join("\n") + "\n");
  const tsc = join(nodeModules, "typescript", "bin", "tsc");
  let out = "";
  try {
    execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution",
                                     "nodenext", "--skipLibCheck", "manifests.ts"], { cwd: dir, encoding: "utf8" });
  } catch (e) {
    out = (e.stdout || "") + (e.stderr || "");
  }
  for (const line of out.split("\n")) {
    const m = line.match(/^manifests\.ts\((\d+),\d+\): (error .*)$/);
    if (!m) continue;
    const idx = offsets.lastIndexOf(offsets.filter((o) => o <= Number(m[1])).pop());
    const d = docs[idx];
    console.log(`FAIL ${d ? `${d.where} ${d.name}` : `line ${m[1]}`}: fields: ${m[2]}`);
    if (d) d.fieldsFailed = true;
    failures++;
  }
  if (out && !/manifests\.ts\(\d+/.test(out)) {
    console.log(`FAIL tsc: ${out.trim()}`);
    failures++;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const d of docs) if (d.schemaOk && !d.fieldsFailed) console.log(`ok   ${d.where} ${d.name}`);
console.log(`${docs.length} documents, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
