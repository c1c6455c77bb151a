#!/usr/bin/env python3
"""The Grafana dashboard (deploy/grafana/brigade.json), validated offline.

No Grafana server is available, so the dashboard is not rendered; instead:
1. it type-checks against npm @grafana/schema (TypeScript types only, pinned)
   with a pinned TypeScript 5 (tsc --strict: unknown fields, wrong types, enum
   values); mutated copies of a small clean fixture first prove that tsc
   catches each kind of fault;
2. what the types leave optional: every panel has a unique id, a title and a
   gridPos (x, y, w, h) inside the 24 columns without overlapping another;
   every non-row panel a datasource, a unit and targets; every target a refId
   and an expr; every datasource is the $datasource variable; the `node`
   variable filters every query of a node's own metric (on the label it lists);
3. every PromQL expression (panel targets, the node variable's label_values
   selector, the annotation) parses in `promtool check rules`, with Grafana's
   variables substituted, all in one rules file;
4. every metric name they use is one a node exports (runtime/metrics.cpp, with
   the _bucket/_sum/_count series of its histograms), a recording rule of
   deploy/prometheus/brigade-rules.yml, or ALERTS/up; the extractor first has
   to flag a made-up name;
5. the annotation's alertname regex matches every alert of the rules file.
@grafana/schema and typescript are installed once into a cache outside the
clone (~/.cache/brigade/npm-grafana, or $BRIGADE_NPM_CACHE), under a lock.

usage: grafana_test.py [REPO_ROOT]   (exit 0 pass, 1 fail, 77: no node, npm or promtool)
"""
import copy
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(HERE))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "brigade.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "brigade-rules.yml")
METRICS_CPP = os.path.join(ROOT, "runtime", "metrics.cpp")
# @grafana/schema ships types only (no JSON Schema); typescript as in tests/deploy/k8s_tools.sh.
PKGS = ["@grafana/schema@13.2.3", "typescript@5.9.3"]
# What Grafana's variables become for promtool: $node sits inside =~"...".
SUBSTITUTIONS = {"node": "node-a|node-b", "__rate_interval": "1m", "__interval": "30s", "__range": "1h",
                 "datasource": "prometheus"}
DATASOURCE_UIDS = ("${datasource}", "$datasource")
failures = []


def step(ok, what, detail=""):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)
        if detail:
            print("\n".join("    " + l for l in detail.rstrip().splitlines()))
    return ok


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- the npm cache -----------------------------------------------------------

def npm_tools():
    """DIR holding node_modules with PKGS; installs them once (a versioned folder, under a lock)."""
    cache = os.environ.get("BRIGADE_NPM_CACHE") or os.path.expanduser("~/.cache/brigade/npm-grafana")
    stamp = hashlib.sha256("".join(p + "\n" for p in PKGS).encode()).hexdigest()[:12]
    dest = os.path.join(cache, f"set-{stamp}")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits, then finds the set in place
        if os.path.exists(os.path.join(dest, ".complete")):
            return dest
        tmp = tempfile.mkdtemp(prefix=".install.", dir=cache)
        try:
            with open(os.path.join(tmp, "package.json"), "w") as f:
                f.write('{"name":"brigade-grafana-tests","private":true}\n')
            p = run(["npm", "i", "-E", "--no-audit", "--no-fund", "--loglevel=error"] + PKGS, cwd=tmp)
            if p.returncode != 0:
                raise RuntimeError(f"could not install {' '.join(PKGS)} into {cache} "
                                   f"(is the npm registry reachable?):\n{p.stdout}{p.stderr}")
            for spec in PKGS:
                name, want = spec.rsplit("@", 1)
                with open(os.path.join(tmp, "node_modules", name, "package.json")) as f:
                    got = json.load(f)["version"]
                if got != want:
                    raise RuntimeError(f"npm installed {name} {got}, not {want}")
            open(os.path.join(tmp, ".complete"), "w").close()
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- 1. the types --------------------------------------------------------------

# The dashboard's JSON against @grafana/schema's Dashboard, adapted in two ways:
# - JSON holds an enum's value ("absolute"), which TypeScript does not accept for
#   a string enum (ThresholdsMode): Json<T> maps each string enum to the union of
#   its values (numeric enums take number literals as they are);
# - @grafana/schema has no Prometheus query type (panel targets are
#   Record<string, unknown>, an annotation's target a bare DataQuery): PromQuery
#   lists the fields of @grafana/prometheus's PromQuery that dashboards store, so
#   a misspelt field of a target is caught too.
TS_PRELUDE = """\
import type { AnnotationQuery, Dashboard, DataQuery, Panel, RowPanel } from "@grafana/schema";

type Json<T> = T extends string ? (string extends T ? string : `${T}`)
  : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;
interface PromQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  interval?: string;
  intervalFactor?: number;
  instant?: boolean;
  range?: boolean;
  exemplar?: boolean;
  format?: "time_series" | "table" | "heatmap";
  editorMode?: "code" | "builder";
}
interface PromAnnotation extends AnnotationQuery<PromQuery> {
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}
type PromPanel = Omit<Panel, "targets"> & { targets?: PromQuery[] };
type PromRow = Omit<RowPanel, "panels"> & { panels: PromPanel[] };
type Checked = Json<Omit<Dashboard, "annotations" | "panels"> & {
  annotations?: { list?: PromAnnotation[] };
  panels?: Array<PromPanel | PromRow>;
}>;
"""


# A small clean dashboard that the mutants below break, one fault each (tsc
# reports one unknown field per object), so the self-check does not depend on
# the dashboard under test being clean.
FIXTURE_DS = {"type": "prometheus", "uid": "${datasource}"}
FIXTURE = {
    "annotations": {"list": [{"datasource": FIXTURE_DS, "enable": True, "iconColor": "red", "name": "alerts",
                              "target": {"expr": "ALERTS", "refId": "Anno"}, "titleFormat": "{{alertname}}"}]},
    "panels": [{"datasource": FIXTURE_DS, "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0}, "id": 1, "title": "up",
                "fieldConfig": {"defaults": {"unit": "s", "thresholds": {
                    "mode": "absolute", "steps": [{"color": "green", "value": None}]}}, "overrides": []},
                "targets": [{"datasource": FIXTURE_DS, "expr": "up", "legendFormat": "{{instance}}", "refId": "A"}],
                "type": "timeseries"}],
    "schemaVersion": 39, "title": "fixture", "uid": "fixture",
}


def mutants():
    """(name, dashboard, what tsc must say)."""
    out = [("the clean fixture", FIXTURE, None)]

    def mutant(name, want, change):
        m = copy.deepcopy(FIXTURE)
        change(m, m["panels"][0])
        out.append((name, m, want))

    mutant("an unknown dashboard field", "'\"refrsh\"' does not exist", lambda m, p: m.update(refrsh="10s"))
    mutant("an unknown panel field", "'\"datasourse\"' does not exist", lambda m, p: p.update(datasourse=p["datasource"]))
    mutant("a wrong type", "Type 'string' is not assignable to type 'number'",
           lambda m, p: p["gridPos"].update(h="8"))
    mutant("a value outside an enum", "'\"absolut\"' is not assignable",
           lambda m, p: p["fieldConfig"]["defaults"]["thresholds"].update(mode="absolut"))
    mutant("an unknown target field", "'\"legendFromat\"' does not exist",
           lambda m, p: p["targets"][0].update(legendFromat="x"))
    mutant("an unknown annotation field", "'\"exp\"' does not exist",
           lambda m, p: m["annotations"]["list"][0]["target"].update(exp="up"))
    return out


def typecheck(d, tools, tmp):
    os.symlink(os.path.join(tools, "node_modules"), os.path.join(tmp, "node_modules"))
    lines, spans = [TS_PRELUDE], []
    for name, dash, want in [("the dashboard", d, None)] + mutants():
        start = sum(l.count("\n") for l in lines) + 1
        lines.append(f"export const d{len(spans)}: Checked = {json.dumps(dash, indent=1)};\n")
        spans.append((name, want, start, start + lines[-1].count("\n")))
    ts = os.path.join(tmp, "dashboard.ts")
    with open(ts, "w") as f:
        f.write("".join(lines))
    tsc = os.path.join(tools, "node_modules", "typescript", "bin", "tsc")
    p = run(["node", tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
             "--skipLibCheck", "dashboard.ts"], cwd=tmp)
    errors = {}  # span index -> tsc's messages
    stray = []
    for m in re.finditer(r"^dashboard\.ts\((\d+),\d+\): (error .*)$", p.stdout, re.M):
        line = int(m.group(1))
        idx = next((i for i, (_, _, a, b) in enumerate(spans) if a <= line < b), None)
        (errors.setdefault(idx, []) if idx is not None else stray).append(f"line {line}: {m.group(2)}")
    if p.returncode != 0 and not errors and not stray:
        stray.append(p.stdout + p.stderr)
    for i, (name, want, _, _) in enumerate(spans[1:], 1):
        got = errors.get(i, [])
        if want is None:
            step(not got, f"tsc passes {name} (Json<> and PromQuery accept what Grafana writes)", "\n".join(got))
        else:
            step(any(want in e for e in got), f"tsc catches {name} ({want})", "\n".join(got) or "no error reported")
    own = errors.get(0, []) + stray
    step(not own, f"the dashboard type-checks against @grafana/schema ({', '.join(PKGS)})", "\n".join(own))


# --- 2. what the types leave optional -------------------------------------------

def all_panels(d):
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []) if p.get("type") == "row" else []:
            yield q


def structure(d):
    problems = []
    step(d.get("uid") == "brigade" and d.get("title") == "brigade" and "brigade" in d.get("tags", [])
         and d.get("schemaVersion", 0) >= 39 and d.get("time", {}).get("from") == "now-1h"
         and d.get("refresh") == "10s",
         "the dashboard is uid/title brigade, tagged brigade, schemaVersion 39+, last hour, refresh 10s",
         json.dumps({k: d.get(k) for k in ("uid", "title", "tags", "schemaVersion", "time", "refresh")}))
    seen, cells = {}, {}
    for p in all_panels(d):
        name = f"panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int):
            problems.append(f"{name}: no integer id")
        elif p["id"] in seen:
            problems.append(f"{name}: id already used by {seen[p['id']]!r}")
        else:
            seen[p["id"]] = p.get("title")
        if not p.get("title"):
            problems.append(f"{name}: no title")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{name}: gridPos needs integer x, y, w and h ({g})")
            continue
        if g["x"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"{name}: gridPos {g} is outside the 24 columns")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{name}: overlaps {cells[(x, y)]} at x={x}, y={y}")
                    break
                cells[(x, y)] = name
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if not p.get("datasource"):
            problems.append(f"{name}: no datasource")
        if not (p.get("fieldConfig", {}).get("defaults", {}).get("unit")):
            problems.append(f"{name}: no unit (fieldConfig.defaults.unit)")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{name}: no targets")
        refs = [t.get("refId") for t in targets]
        if not all(refs) or len(set(refs)) != len(refs):
            problems.append(f"{name}: every target needs a refId of its own ({refs})")
        for t in targets:
            if not (t.get("expr") or "").strip():
                problems.append(f"{name}: target {t.get('refId')} has no expr")
    step(not problems, f"{len(seen)} panels: unique ids, titles, gridPos inside the grid without overlaps; "
         "datasource, unit, refId and expr on every query panel", "\n".join(problems))

    # The datasource is always the variable, so the dashboard works on any Prometheus.
    refs = [("panel " + str(p.get("id")), p.get("datasource")) for p in all_panels(d) if p.get("type") != "row"]
    refs += [(f"panel {p.get('id')} target {t.get('refId')}", t["datasource"])
             for p in all_panels(d) for t in p.get("targets", []) if "datasource" in t]
    refs += [(f"annotation {a.get('name')!r}", a.get("datasource")) for a in annotations(d)]
    refs += [(f"variable {v.get('name')}", v.get("datasource")) for v in variables(d) if v.get("type") == "query"]
    bad = [f"{w}: {r}" for w, r in refs if not (isinstance(r, dict) and r.get("type") == "prometheus"
                                               and r.get("uid") in DATASOURCE_UIDS)]
    ds = [v for v in variables(d) if v.get("name") == "datasource"]
    step(bool(ds) and ds[0].get("type") == "datasource" and ds[0].get("query") == "prometheus" and not bad,
         f"a prometheus datasource variable, and all {len(refs)} datasources are it", "\n".join(bad))


def annotations(d):
    return d.get("annotations", {}).get("list", [])


def variables(d):
    return d.get("templating", {}).get("list", [])


def variable_query(v):
    q = v.get("query")
    return q.get("query", "") if isinstance(q, dict) else (q or "")


def label_values(q):
    """(selector or None, label) of Grafana's label_values([selector,] label), or None."""
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.*\S)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q, re.S)
    return (m.group(1), m.group(2)) if m else None


def expressions(d):
    """[(where, PromQL)]: every panel target, the query variables' selectors, every annotation."""
    out = []
    for p in all_panels(d):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"panel {p.get('id')} {p.get('title')!r} target {t.get('refId')}", t["expr"]))
    for v in variables(d):
        if v.get("type") != "query":
            continue
        # Grafana's own functions are not PromQL: check the selector or query they wrap.
        q = variable_query(v)
        lv = label_values(q)
        inner = re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
        if lv:
            if lv[0]:
                out.append((f"variable {v['name']} (label_values selector)", lv[0]))
        elif inner:
            out.append((f"variable {v['name']} (query_result)", inner.group(1)))
        elif not re.match(r"\s*(label_names|metrics)\(", q):
            out.append((f"variable {v['name']}", q))
    for a in annotations(d):
        expr = annotation_expr(a)
        if expr:
            out.append((f"annotation {a.get('name')!r}", expr))
    return out


def annotation_expr(a):
    # Grafana 10+ keeps the query in target; older dashboards beside it.
    return (a.get("target") or {}).get("expr") or a.get("expr") or ""


# --- 3. PromQL in promtool -------------------------------------------------------

def substitute(expr):
    """Grafana's variables ($name, ${name}) replaced by what SUBSTITUTIONS gives; others left as they are."""
    def value(m):
        return SUBSTITUTIONS.get(m.group(2), m.group(0))
    return re.sub(r"\$(\{)?([A-Za-z_][A-Za-z0-9_]*)(?(1)\})", value, expr)


def promtool_check(exprs, tmp, name):
    """{index: promtool's message} for the expressions that do not parse (one rules file)."""
    path = os.path.join(tmp, f"{name}.yml")
    rules = [{"record": f"grafana:check:{i}", "expr": e} for i, e in enumerate(exprs)]
    with open(path, "w") as f:
        json.dump({"groups": [{"name": "grafana", "rules": rules}]}, f, indent=1)  # JSON is YAML
    p = run(["promtool", "check", "rules", path])
    if p.returncode == 0:
        return {}
    out = p.stdout + p.stderr
    bad = {int(m.group(1)): m.group(0).strip() for m in re.finditer(r"grafana:check:(\d+).*", out)}
    return bad or {-1: out}


def promql(d, tmp):
    exprs = expressions(d)
    leftover = [f"{w}: {m}" for w, e in exprs for m in re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", substitute(e))]
    step(not leftover, "no Grafana variable but $node, $datasource and the built-in intervals", "\n".join(leftover))
    # promtool must name the expression that fails before its pass means anything.
    bad = promtool_check(["sum(up)", "sum(rate(up[1m])"], tmp, "self-check")
    step(list(bad) == [1], "promtool check rules names the expression that does not parse", json.dumps(bad))
    bad = promtool_check([substitute(e) for _, e in exprs], tmp, "dashboard-rules")
    step(not bad, f"all {len(exprs)} PromQL expressions parse in promtool (variables substituted)",
         "\n".join(f"{exprs[i][0] if i >= 0 else 'promtool'}: {msg}" for i, msg in sorted(bad.items())))
    return exprs


# --- 4. metric names -------------------------------------------------------------

# Words of PromQL that are not series: operators, modifiers, number literals.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "atan2", "offset", "start", "end", "inf", "nan"}
GROUPING = ("by", "without", "on", "ignoring", "group_left", "group_right")
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{[^{}]*\})
  | (?P<brackets>\[[^\[\]]*\])
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>\S)
""", re.X)


def metric_names(expr):
    """The series names a PromQL expression selects (functions, keywords and labels left out)."""
    names = []
    # Strings may hold braces and brackets: take them out first (keeping __name__="...").
    names += re.findall(r"""__name__\s*=\s*["']([A-Za-z_:][A-Za-z0-9_:]*)["']""", expr)
    toks = [(m.lastgroup, m.group()) for m in TOKEN.finditer(re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'',
                                                                     '""', expr))]
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text.lower() in GROUPING and nxt == "(":
            # by (label, ...): skip the label list
            depth, i = 0, i + 1
            while i < len(toks):
                depth += {"(": 1, ")": -1}.get(toks[i][1], 0)
                i += 1
                if depth == 0:
                    break
            continue
        # A function or an aggregation is followed by "(" or by its modifier: sum by (x) (...).
        if kind == "ident" and nxt != "(" and nxt.lower() not in ("by", "without") and text.lower() not in KEYWORDS:
            names.append(text)
        i += 1
    return names


def exported_metrics():
    """The series a node exposes: each .Name("brigade_...") of runtime/metrics.cpp, by its builder."""
    src = open(METRICS_CPP).read()
    found = re.findall(r"Build(Counter|Gauge|Histogram|Summary|Info)\(\)\s*\.Name\(\"(brigade_[a-z0-9_]+)\"\)", src)
    names = set()
    for kind, name in found:
        # prometheus-cpp exposes a counter under its name as given (these already end in _total).
        names.add(name)
        if kind == "Histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        if kind == "Summary":
            names |= {name + "_sum", name + "_count"}
    return found, names


def recording_rules():
    text = open(RULES).read()
    try:
        import yaml
        doc = yaml.safe_load(text)
        rules = [r for g in doc["groups"] for r in g["rules"]]
        return {r["record"] for r in rules if "record" in r}, [r["alert"] for r in rules if "alert" in r]
    except ImportError:  # the two keys are plain scalars in this file
        return (set(re.findall(r"^\s*-?\s*record:\s*(\S+)", text, re.M)),
                re.findall(r"^\s*-?\s*alert:\s*(\S+)", text, re.M))


def metrics(d, exprs):
    found, exported = exported_metrics()
    records, alerts = recording_rules()
    known = exported | records | {"ALERTS", "ALERTS_FOR_STATE", "up"}
    step(len(found) >= 10 and bool(records), f"{len(found)} metrics in runtime/metrics.cpp "
         f"({len(exported)} series), {len(records)} recording rules in brigade-rules.yml")

    def unknown(expr):
        return sorted({n for n in metric_names(expr) if n not in known})

    sample = ('sum by (instance, le) (rate(brigade_not_a_metric{instance=~"$node", le!="+Inf"}[5m] offset 1m))'
              ' / on (instance) group_left brigade:tokens_per_second:sum * bool 0.5e3 + histogram_quantile(0.9, '
              'x_bucket[5m:30s]) > {__name__="brigade_also_not"}')
    want = ["brigade_also_not", "brigade_not_a_metric", "x_bucket"]
    step(unknown(sample) == want, "the metric check flags made-up names and nothing else in a sample",
         f"got {unknown(sample)}, want {want}")
    bad = [f"{w}: {', '.join(unknown(e))}  in  {e}" for w, e in exprs if unknown(e)]
    used = sorted({n for _, e in exprs for n in metric_names(e)})
    step(not bad, f"all {len(used)} metric names are exported by a node, recording rules or ALERTS/up",
         "\n".join(bad))

    # The node variable lists a label; every query of a node's own series filters on it.
    node = [v for v in variables(d) if v.get("name") == "node"]
    lv = label_values(variable_query(node[0])) if node else None
    step(bool(node and lv and lv[0] and node[0].get("type") == "query" and node[0].get("multi")
              and node[0].get("includeAll")),
         f"a multi-value `node` query variable with All, listing label_values over a brigade metric ({lv})")
    if not lv:
        return
    label = lv[1]
    filt = re.compile(label + r'\s*=~\s*"\$(?:node|\{node\})"')
    selector = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?'
                          r'|"(?:[^"\\]|\\.)*"')
    unfiltered = []
    for w, e in exprs:
        if w.startswith("panel "):
            unfiltered += [f"{w}: {m.group(0)}" for m in selector.finditer(e)
                           if m.group(1) in exported and not filt.search(m.group(2) or "")]
    step(not unfiltered, f"every selector of a node's series in a panel filters {label}=~\"$node\"",
         "\n".join(unfiltered))

    # 5. The annotation shows every alert of the rules file.
    for a in annotations(d):
        expr = annotation_expr(a)
        m = re.search(r'alertname\s*=~\s*"([^"]*)"', expr)
        missed = [al for al in alerts if not (m and re.fullmatch(m.group(1), al))]
        step("ALERTS" in metric_names(expr) and 'alertstate="firing"' in expr.replace(" ", "") and not missed,
             f"annotation {a.get('name')!r} shows firing ALERTS of every alert in brigade-rules.yml ({len(alerts)})",
             f"{expr}; not matched: {missed}")


def main():
    for tool in ("node", "npm", "promtool"):
        if not shutil.which(tool):
            print(f"grafana_test: {tool} is not installed (deploy/setup.sh installs what the tests use); skipping")
            return 77
    try:
        with open(DASHBOARD) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        step(False, f"{DASHBOARD} is JSON", str(e))
        return 1
    try:
        tools = npm_tools()
    except (OSError, RuntimeError) as e:
        step(False, f"install {' '.join(PKGS)}", str(e))
        return 1
    tmp = tempfile.mkdtemp(prefix="brigade-grafana-")
    try:
        typecheck(d, tools, tmp)
        structure(d)
        exprs = promql(d, tmp)
        metrics(d, exprs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
