// brigade's live dashboard: the cluster as the serving node sees it.
// Data: GET /api/v1/cluster (the node objects), /api/v1/series (the charts'
// history, whole at first paint, then the last seconds), /api/v1/events
// (since the last one seen). Polled every second from this page's own
// origin only; nothing else is loaded. This script runs before Chart.js
// (index.html): the first requests are under way while Chart.js compiles,
// and rendering waits for DOMContentLoaded (after every deferred script).
"use strict";

const HISTORY_S = 600;
const REFRESH_MS = 1000;
const PALETTE = ["#2f6fdf", "#e0662b", "#2a9d5b", "#b54acb", "#c9a227", "#1aa3b8", "#d6456d", "#6d7a8a"];

// The charts: series name, title, unit (axis title), value format.
const CHARTS = [
  { key: "tokens_per_second", title: "Tokens generated", unit: "tokens/s", fmt: v => num(v, 1) + " tokens/s" },
  { key: "ttft_p99_seconds", title: "Time to first token, p99 (last 512 turns)", unit: "seconds", fmt: v => secs(v) },
  { key: "queue_depth", title: "Queue depth", unit: "turns waiting", fmt: v => num(v, 0) + " turns" },
  { key: "mean_batch_size", title: "Mean batch size (last 512 steps)", unit: "sequences per step", fmt: v => num(v, 1) },
];
// The node view adds these.
const DETAIL_CHARTS = CHARTS.concat([
  { key: "ttft_p50_seconds", title: "Time to first token, p50 (last 512 turns)", unit: "seconds", fmt: v => secs(v) },
  { key: "engine_busy_ratio", title: "Engine busy", unit: "% of time computing", fmt: v => pct(v), pct: true },
  { key: "kv_cache_usage_ratio", title: "KV cache in use", unit: "% of blocks", fmt: v => pct(v), pct: true },
  { key: "sessions", title: "Sessions", unit: "live sessions", fmt: v => num(v, 0) },
]);

// The node table's columns: field, label (phone view), format.
const COLUMNS = [
  ["sessions", "Sessions", v => num(v, 0)],
  ["queue_depth", "Queue", v => num(v, 0) + " turns"],
  ["tokens_per_second", "Tokens/s", v => num(v, 1) + " tok/s"],
  ["ttft_p50_seconds", "TTFT p50", v => secs(v)],
  ["ttft_p99_seconds", "TTFT p99", v => secs(v)],
  ["mean_batch_size", "Batch", v => num(v, 1) + " seq"],
  ["engine_busy_ratio", "Busy", v => pct(v)],
  ["kv_cache_usage_ratio", "KV use", v => pct(v)],
  ["session_restarts", "Restarts", v => num(v, 0)],
  ["requests_rejected", "Refused", v => num(v, 0)],
  ["load_ratio", "Load", v => pct(v)],
  ["heartbeat_age_seconds", "Heartbeat", v => num(v, 1) + " s ago"],
];

const state = {
  cluster: null,        // the last /api/v1/cluster
  series: Object.create(null),  // node -> key -> [[t, v], ...] (no prototype: any node name is a key)
  events: [],           // oldest first
  lastEvent: 0,
  charts: [],           // {def, chart, node (null: every node)}
  chartsFor: undefined, // the node the charts show (null: all)
  colors: Object.create(null),  // node -> colour
  failures: 0,
  firstPaint: null,
  lastOkAt: 0,          // performance.now() of the last answer
  range: HISTORY_S,     // seconds the charts show
};
window.brigade = state;  // for the browser tests and the curious

// -- formatting ---------------------------------------------------------------------------
function num(v, d) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}
function secs(v) {
  if (!isFinite(v)) return "–";
  if (v === 0) return "0 ms";
  return v < 1 ? num(v * 1000, v < 0.01 ? 2 : 0) + " ms" : num(v, 2) + " s";
}
function pct(v) { return isFinite(v) ? num(v * 100, 0) + " %" : "–"; }
function clock(t) {
  const d = new Date(t * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}
function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
function colorOf(node) {
  if (!state.colors[node]) state.colors[node] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
  return state.colors[node];
}

// -- theme ----------------------------------------------------------------------------------
const THEMES = ["auto", "light", "dark"];
function applyTheme(t) {
  if (t === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  document.getElementById("theme").textContent = "theme: " + t;
  try { localStorage.setItem("brigade-theme", t); } catch (e) { /* private mode */ }
  for (const c of state.charts) styleChart(c.chart);
}

// -- fetching -------------------------------------------------------------------------------
async function getJSON(path) {
  // A node that stops answering (frozen, or a silent network) must not
  // stall the page: every request gives up after 3 s.
  const r = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(3000) });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status + " " + (await r.text()).trim());
  return r.json();
}

function mergeSeries(body, whole) {
  const horizon = body.time - HISTORY_S;
  if (whole) state.series = Object.create(null);
  for (const [node, per] of Object.entries(body.nodes)) {
    const mine = state.series[node] || (state.series[node] = Object.create(null));
    for (const [key, pts] of Object.entries(per)) {
      const arr = mine[key] || (mine[key] = []);
      const last = arr.length ? arr[arr.length - 1][0] : -Infinity;
      for (const p of pts) {
        if (p[0] <= last) continue;
        // More than 2 steps without a point (the node was dead): a gap, not a line across.
        if (arr.length && p[0] - arr[arr.length - 1][0] > 2.5 * body.step_seconds) arr.push([p[0] - body.step_seconds, null]);
        arr.push(p);
      }
      let drop = 0;
      while (drop < arr.length && arr[drop][0] < horizon) drop++;
      if (drop) arr.splice(0, drop);
    }
  }
  for (const node of Object.keys(state.series)) {
    const any = Object.values(state.series[node]).some(a => a.length && a[a.length - 1][0] >= horizon);
    if (!any) delete state.series[node];
  }
}

/** Seconds of series to ask for: all at first, else back to the newest
 *  point held (a background tab polls rarely; nothing is skipped). */
function seriesWindow(first) {
  if (first || !state.cluster) return HISTORY_S;
  let newest = -Infinity;
  for (const per of Object.values(state.series))
    for (const arr of Object.values(per)) if (arr.length) newest = Math.max(newest, arr[arr.length - 1][0]);
  if (!isFinite(newest)) return HISTORY_S;
  // The node's clock, not this browser's: its last answer's time plus what passed since.
  const nodeNow = state.cluster.time + (performance.now() - state.lastOkAt) / 1000;
  return Math.min(HISTORY_S, Math.max(5, Math.ceil(nodeNow - newest) + 2));
}

function fetchAll(first) {
  return Promise.all([
    getJSON("/api/v1/cluster"),
    getJSON("/api/v1/series?seconds=" + seriesWindow(first)),
    getJSON("/api/v1/events" + (state.lastEvent ? "?since=" + state.lastEvent : "")),
  ]);
}
const firstFetch = fetchAll(true);
const domReady = new Promise(r => document.readyState === "loading"
  ? document.addEventListener("DOMContentLoaded", r, { once: true }) : r());

async function refresh(first, pending) {
  try {
    const [cluster, series, events] = await (pending || fetchAll(first));
    state.cluster = cluster;
    state.lastOkAt = performance.now();
    mergeSeries(series, first);
    for (const e of events.events) {
      if (e.time > state.lastEvent) state.events.push(e);
    }
    if (state.events.length) state.lastEvent = state.events[state.events.length - 1].time;
    if (state.events.length > 500) state.events.splice(0, state.events.length - 500);
    state.failures = 0;
    render();
    if (state.firstPaint === null) {
      state.firstPaint = performance.now();
      document.body.dataset.ready = "1";
    }
  } catch (e) {
    state.failures++;
    const b = document.getElementById("banner");
    b.hidden = false;
    b.textContent = "This node does not answer (" + e.message + "); retrying every second. " +
      "The figures below are from " + (state.cluster ? clock(state.cluster.time) : "nothing yet") + ".";
    document.getElementById("live").classList.add("stale");
  }
}

// -- rendering ------------------------------------------------------------------------------
function selected() {
  const m = /^#node=(.+)$/.exec(location.hash);
  if (!m) return null;
  try { return decodeURIComponent(m[1]); } catch (e) { return m[1]; }
}

function render() {
  const c = state.cluster;
  document.getElementById("banner").hidden = true;
  document.getElementById("live").classList.remove("stale");
  document.getElementById("where").textContent =
    (c.cluster ? "cluster " + c.cluster : "single node (memory store)") + " · as seen from " + c.self;
  document.getElementById("updated").textContent = "updated " + clock(c.time);
  renderTiles(c);
  renderNodes(c);
  renderDetail(c);
  renderCharts(c);
  renderEvents();
}

function renderTiles(c) {
  const live = c.nodes.filter(n => n.state !== "dead");
  const serving = live.filter(n => n.state === "active" || n.state === "draining");
  const sum = k => live.reduce((a, n) => a + (n[k] || 0), 0);
  const max = k => live.reduce((a, n) => Math.max(a, n[k] || 0), 0);
  const tiles = [
    ["nodes", "Nodes live", num(live.length, 0), "of " + c.nodes.length],
    ["replicas", "Desired / actual replicas",
      (c.desired_replicas === null ? "–" : num(c.desired_replicas, 0)) + " / " + num(serving.length, 0), "nodes"],
    ["sessions", "Sessions", num(sum("sessions"), 0), ""],
    ["tokens", "Tokens generated", num(sum("tokens_per_second"), 1), "tokens/s"],
    ["ttft", "TTFT p99 (worst node)", secs(max("ttft_p99_seconds")), ""],
    ["queue", "Queue depth", num(sum("queue_depth"), 0), "turns"],
    ["refused", "Refused", num(sum("requests_rejected"), 0), "requests"],
  ];
  const box = document.getElementById("tiles");
  box.replaceChildren(...tiles.map(([id, label, value, unit]) =>
    el("div", { class: "tile", "data-tile": id },
      el("div", { class: "label", text: label }),
      el("div", { class: "value" }, value, el("span", { class: "unit", text: unit })))));
}

function renderNodes(c) {
  const tbody = document.querySelector("#nodes tbody");
  const rows = c.nodes.map(n => {
    const tr = el("tr", { "data-node": n.name, class: (n.name === c.self ? "self " : "") + (n.state === "dead" ? "dead" : "") });
    const a = el("a", { href: "#node=" + encodeURIComponent(n.name), text: n.name, title: n.address + " · " + n.model });
    tr.append(el("td", { "data-label": "Node", "data-field": "name" }, a));
    tr.append(el("td", { "data-label": "State", "data-field": "state", class: "state state-" + n.state, text: n.state }));
    for (const [k, label, f] of COLUMNS)
      tr.append(el("td", { "data-label": label, "data-field": k, "data-value": String(n[k]), text: f(n[k]) }));
    return tr;
  });
  tbody.replaceChildren(...rows);
}

function renderDetail(c) {
  const name = selected();
  const box = document.getElementById("detail");
  if (!name) { box.hidden = true; return; }
  const n = c.nodes.find(x => x.name === name);
  box.hidden = false;
  document.getElementById("detail-name").textContent = name + (n ? "" : " (not a member now)");
  const dl = document.getElementById("detail-figures");
  if (!n) { dl.replaceChildren(); return; }
  const unit = (k, v) => {
    if (typeof v !== "number") return String(v);
    if (k.endsWith("_seconds")) return secs(v);
    if (k.endsWith("_ratio")) return pct(v);
    if (k.endsWith("_per_second")) return num(v, 2) + " /s";
    if (k.endsWith("_tokens") || k.includes("tokens_")) return num(v, 0) + " tokens";
    return num(v, Number.isInteger(v) ? 0 : 2);
  };
  dl.replaceChildren(...Object.entries(n).map(([k, v]) =>
    el("div", {}, el("dt", { text: k.replace(/_/g, " ") }), el("dd", { "data-field": k, text: unit(k, v) }))));
}

function chartOptions(def) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    parsing: false,
    normalized: true,
    interaction: { mode: "nearest", axis: "x", intersect: false },
    elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 1.5, tension: 0 } },
    plugins: {
      legend: { position: "bottom", labels: { boxWidth: 10 } },
      tooltip: { callbacks: {
        title: items => items.length ? clock(items[0].parsed.x) : "",
        label: it => it.dataset.label + ": " + def.fmt(it.parsed.y),
      } },
    },
    scales: {
      x: { type: "linear", title: { display: true, text: "time (local)" },
        ticks: { maxTicksLimit: 6, callback: v => clock(v) } },
      y: { beginAtZero: true, title: { display: true, text: def.unit },
        ticks: { callback: v => def.pct ? num(v * 100, 0) + " %" : (def.unit === "seconds" ? secs(v) : num(v, v < 10 ? 1 : 0)) } },
    },
  };
}

function styleChart(chart) {
  const fg = css("--muted"), grid = css("--grid");
  for (const axis of Object.values(chart.options.scales)) {
    axis.ticks.color = fg; axis.title.color = fg; axis.grid = { color: grid };
  }
  chart.options.plugins.legend.labels.color = fg;
  chart.update("none");
}

function renderCharts(c) {
  const focus = selected();
  const want = focus && c.nodes.some(n => n.name === focus) ? focus : null;
  if (state.chartsFor !== want || state.chartsRange !== state.range || !state.charts.length) {
    for (const x of state.charts) x.chart.destroy();
    state.charts = [];
    const box = document.getElementById("charts");
    box.replaceChildren();
    document.getElementById("charts-title").textContent =
      "Last " + (state.range / 60) + (state.range === 60 ? " minute" : " minutes") + (want ? " on " + want : ", per node");
    for (const def of (want ? DETAIL_CHARTS : CHARTS)) {
      const canvas = el("canvas", { "aria-label": def.title + " (" + def.unit + ")", role: "img" });
      box.append(el("div", { class: "chart", "data-chart": def.key },
        el("h3", { text: def.title + " (" + def.unit + ")" }), el("div", { class: "box" }, canvas)));
      const chart = new Chart(canvas, { type: "line", data: { datasets: [] }, options: chartOptions(def) });
      styleChart(chart);
      state.charts.push({ def, chart });
    }
    state.chartsFor = want;
    state.chartsRange = state.range;
  }
  const nodes = want ? [want] : Object.keys(state.series).sort();
  for (const { def, chart } of state.charts) {
    chart.data.datasets = nodes.map(node => {
      const from = c.time - state.range;
      const pts = ((state.series[node] || {})[def.key] || []).filter(p => p[0] >= from).map(p => ({ x: p[0], y: p[1] }));
      const color = colorOf(node);
      return { label: node, data: pts, borderColor: color, backgroundColor: color };
    });
    chart.options.scales.x.min = c.time - state.range;
    chart.options.scales.x.max = c.time;
    chart.update("none");
  }
}

function renderEvents() {
  const ol = document.getElementById("events");
  const focus = selected();
  const shown = state.events.filter(e => !focus || e.node === focus).slice(-200).reverse();
  if (!shown.length) {
    ol.replaceChildren(el("li", { class: "empty", text: "No events yet." }));
    return;
  }
  ol.replaceChildren(...shown.map(e => el("li", { "data-kind": e.kind },
    el("span", { class: "time", text: clock(e.time) }),
    el("span", { class: "node", text: e.node }),
    el("span", { class: "kind " + e.kind, text: e.kind.replace(/_/g, " ") }),
    e.session ? el("span", { class: "session muted", text: "session " + e.session }) : "",
    el("span", { class: "detail", text: e.detail }))));
}

// -- start ----------------------------------------------------------------------------------
function start() {
  let theme = "auto";
  try { theme = localStorage.getItem("brigade-theme") || "auto"; } catch (e) { /* private mode */ }
  if (!THEMES.includes(theme)) theme = "auto";
  applyTheme(theme);
  document.getElementById("theme").addEventListener("click", () => {
    const cur = document.documentElement.dataset.theme || "auto";
    applyTheme(THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length]);
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(
    document.documentElement.dataset.theme || "auto"));
  window.addEventListener("hashchange", () => { if (state.cluster) render(); });
  const range = document.getElementById("range");
  try { const r = Number(localStorage.getItem("brigade-range")); if ([60, 300, 600].includes(r)) range.value = String(r); }
  catch (e) { /* private mode */ }
  state.range = Number(range.value);
  range.addEventListener("change", () => {
    state.range = Number(range.value);
    try { localStorage.setItem("brigade-range", range.value); } catch (e) { /* private mode */ }
    if (state.cluster) render();
  });
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await refresh(state.cluster === null); } finally { busy = false; }
  };
  refresh(true, firstFetch).then(() => setInterval(tick, REFRESH_MS));
}
firstFetch.catch(() => {});  // refresh() reports it
domReady.then(start);
