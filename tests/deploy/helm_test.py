#!/usr/bin/env python3
"""The Helm chart (deploy/helm/brigade), validated offline.

For the default values and every deploy/helm/brigade/ci/*-values.yaml (GPU,
CPU, and each autoscaling mode):
- `helm lint --strict` is clean and `helm template` renders;
- `yamllint` passes on the rendered output;
- every rendered document validates against the Kubernetes, KEDA and
  prometheus-operator schemas, unknown fields included (tests/deploy/validate.mjs;
  a mutated copy first proves that the validator catches each kind of fault);
- the chart's environment sets only keys that config/brigade.conf has, and
  terminationGracePeriodSeconds covers drain-grace;
- the ConfigMap carries config/brigade.conf, the PrometheusRule
  deploy/prometheus/brigade-rules.yml, the adapter's ConfigMap
  deploy/autoscaling/prometheus-adapter-rules.yaml and, with
  grafana.dashboards.enabled, the dashboard's ConfigMap (labelled for Grafana's
  sidecar) deploy/grafana/brigade.json, unchanged (the chart links to each);
- the adapter's metricsQuery (its template variables substituted) and KEDA's
  query parse in promtool;
- the rendered HPA and ScaledObject drive bench/scaling_sim.py's simulated
  HPA, which must land on the signal outside the tolerance (--check --quick).
Bad values are refused by values.schema.json or the templates, naming the field.

usage: helm_test.py BRIGADE_BINARY   (exit 77: no node/npm or promtool, or no PyYAML)
"""
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("helm_test: needs PyYAML (python3-yaml; deploy/setup.sh installs it)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "deploy", "helm", "brigade")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "brigade.json")
YAMLLINT = ("{extends: default, rules: {line-length: {max: 200}, document-start: disable, "
            "indentation: {spaces: consistent, indent-sequences: whatever}}}")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)
    return ok


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def main():
    brigade = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "app", "brigade")
    for tool in ("node", "npm", "promtool", "yamllint"):
        if not shutil.which(tool):
            print(f"helm_test: {tool} is not installed (deploy/setup.sh installs what the tests use); skipping")
            return 77
    tools = run(["bash", os.path.join(HERE, "k8s_tools.sh")])
    if tools.returncode != 0:
        print(tools.stderr)
        return 1
    tools = tools.stdout.strip().splitlines()[-1]
    helm, modules = os.path.join(tools, "bin", "helm"), os.path.join(tools, "node_modules")
    tmp = tempfile.mkdtemp(prefix="brigade-helm-")
    env = dict(os.environ, HOME=tmp, HELM_CACHE_HOME=f"{tmp}/cache", HELM_CONFIG_HOME=f"{tmp}/config",
               HELM_DATA_HOME=f"{tmp}/data")
    try:
        return test(helm, modules, brigade, tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def helm_out(p):
    # Helm warns on stderr about the chart's links to the shared files (files/ -> deploy/, config/).
    return "\n".join(l for l in (p.stdout + p.stderr).splitlines() if "found symbolic link" not in l)


def test(helm, modules, brigade, tmp, env):
    values = [("default", None)] + sorted(
        (f[:-len("-values.yaml")], os.path.join(CHART, "ci", f)) for f in os.listdir(os.path.join(CHART, "ci"))
        if f.endswith("-values.yaml"))
    link = os.path.join(CHART, "dashboards", "brigade.json")
    check(os.path.islink(link) and os.path.realpath(link) == os.path.realpath(DASHBOARD),
          "the chart's dashboards/brigade.json links to deploy/grafana/brigade.json")
    rendered = {}
    for name, vf in values:
        args = ["-f", vf] if vf else []
        lint = run([helm, "lint", "--strict", CHART] + args, env)
        out = helm_out(lint)
        check(lint.returncode == 0 and "[WARNING]" not in out and "[ERROR]" not in out,
              f"helm lint --strict ({name}){'' if lint.returncode == 0 else ': ' + out}")
        t = run([helm, "template", "brigade", CHART, "--namespace", "serving"] + args, env)
        if not check(t.returncode == 0, f"helm template ({name}){'' if t.returncode == 0 else ': ' + helm_out(t)}"):
            continue
        path = os.path.join(tmp, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(t.stdout)
        rendered[name] = (path, [d for d in yaml.safe_load_all(t.stdout) if d])
    if not rendered:
        return 1

    lint = run(["yamllint", "-f", "parsable", "-d", YAMLLINT] + [p for p, _ in rendered.values()])
    check(lint.returncode == 0, "yamllint on the rendered output" + ("" if lint.returncode == 0 else ":\n" + lint.stdout))

    # The validator must catch each kind of fault before its pass means anything.
    docs = copy.deepcopy(rendered["hpa"][1])
    by_kind = {d["kind"]: d for d in docs}
    by_kind["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    by_kind["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] = "16"
    del by_kind["ServiceMonitor"]["spec"]["selector"]
    by_kind["Service"]["spec"]["ports"][0]["port"] = "basp"
    bad = os.path.join(tmp, "mutated.yaml")
    with open(bad, "w") as f:
        yaml.safe_dump_all(docs, f)
    v = run(["node", os.path.join(HERE, "validate.mjs"), modules, bad])
    caught = [m in v.stdout for m in ("'\"imagePullPolice\"' does not exist", "maxReplicas must be integer",
                                      "required property selector", "ports/0/port must be integer")]
    check(v.returncode == 1 and all(caught), f"the validator catches an unknown field, a wrong type, a missing "
          f"required field and a bad port ({caught})" + ("" if all(caught) else ":\n" + v.stdout))
    v = run(["node", os.path.join(HERE, "validate.mjs"), modules] + [p for p, _ in rendered.values()])
    print(v.stdout.strip().splitlines()[-1] if v.stdout.strip() else v.stderr)
    check(v.returncode == 0, "every rendered document validates (schemas and unknown fields)" +
          ("" if v.returncode == 0 else ":\n" + "\n".join(l for l in v.stdout.splitlines() if l.startswith("FAIL"))))

    keys = set(re.findall(r"^([a-z][a-z0-9-]*) *=", open(os.path.join(ROOT, "config", "brigade.conf")).read(), re.M))
    for name, (_, docs) in rendered.items():
        kinds = {}
        for d in docs:
            kinds.setdefault(d["kind"], []).append(d)
        ss = kinds["StatefulSet"][0]
        pod = ss["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env_keys = [e["name"] for e in c["env"] if e["name"].startswith("BRIGADE_")]
        unknown = [k for k in env_keys if k not in ("BRIGADE_CONFIG", "BRIGADE_CACHE_DIR")
                   and k[len("BRIGADE_"):].lower().replace("_", "-") not in keys]
        check(not unknown, f"{name}: every BRIGADE_ variable is a config key ({unknown or 'all known'})")
        envs = {e["name"]: e.get("value") for e in c["env"]}
        grace = int(envs["BRIGADE_DRAIN_GRACE"].rstrip("s"))
        check(pod["terminationGracePeriodSeconds"] > grace,
              f"{name}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > drain-grace {grace}s")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz",
              f"{name}: readiness on /readyz, liveness on /healthz")
        for ic in pod.get("initContainers", []):
            src = ic["command"][2]
            mounts = [m["mountPath"] for m in ic.get("volumeMounts", [])]
            check(not any(src.startswith(m.rstrip("/") + "/") for m in mounts),
                  f"{name}: the model copy's source {src} is not under a volume mounted over it ({mounts})")
        check(not any(a for a in c.get("args", []) if "password" in a or "key" in a),
              f"{name}: no secret on the command line")
        cm = [d for d in kinds["ConfigMap"] if "brigade.conf" in d.get("data", {})][0]
        check(cm["data"]["brigade.conf"] == open(os.path.join(ROOT, "config", "brigade.conf")).read(),
              f"{name}: the ConfigMap is config/brigade.conf")
        for pr in kinds.get("PrometheusRule", []):
            src = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus", "brigade-rules.yml")))
            check(pr["spec"] == src, f"{name}: the PrometheusRule is deploy/prometheus/brigade-rules.yml")
        for d in kinds.get("ConfigMap", []):
            if "config.yaml" in d.get("data", {}):
                src = open(os.path.join(ROOT, "deploy", "autoscaling", "prometheus-adapter-rules.yaml")).read()
                check(d["data"]["config.yaml"] == src, f"{name}: the adapter ConfigMap is deploy/autoscaling's rules")
                adapter_queries(name, yaml.safe_load(d["data"]["config.yaml"]), tmp)
        grafana = (yaml.safe_load(open(dict(values)[name])).get("grafana", {}).get("dashboards", {})
                   .get("enabled", False) if dict(values)[name] else False)
        boards = [d for d in kinds.get("ConfigMap", []) if "brigade.json" in d.get("data", {})]
        check(len(boards) == (1 if grafana else 0),
              f"{name}: grafana.dashboards.enabled {str(grafana).lower()}: {len(boards)} dashboard ConfigMap")
        for b in boards:
            check(b["metadata"]["labels"].get("grafana_dashboard") == "1",
                  f"{name}: the dashboard ConfigMap carries the sidecar label grafana_dashboard: \"1\"")
            check(b["data"]["brigade.json"] == open(DASHBOARD).read(),
                  f"{name}: the dashboard ConfigMap is deploy/grafana/brigade.json, byte for byte")
        scalers = kinds.get("HorizontalPodAutoscaler", []) + kinds.get("ScaledObject", [])
        mode = yaml.safe_load(open(dict(values)[name])).get("autoscaling", {}).get("mode", "none") if dict(values)[name] else "none"
        check(len(scalers) == (0 if mode == "none" else 1), f"{name}: autoscaling {mode}: {len(scalers)} autoscaler")
        check(("replicas" in ss["spec"]) == (mode == "none"), f"{name}: the StatefulSet sets replicas only without an autoscaler")
        for s in scalers:
            if s["kind"] == "ScaledObject":
                q = s["spec"]["triggers"][0]["metadata"]["query"]
                promql(f"{name}: KEDA's query {q}", q, tmp)
            path = os.path.join(tmp, f"{name}-{s['kind']}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(s, f)
            sim = run([sys.executable, os.path.join(ROOT, "bench", "scaling_sim.py"), "--brigade", brigade, "--quick",
                       "--check", "--autoscaler", path])
            landed = sim.returncode == 0
            check(landed, f"{name}: the rendered {s['kind']} lands on the signal in the simulated HPA" +
                  ("" if landed else ":\n" + sim.stdout[-2000:] + sim.stderr[-2000:]))

    # config: numbers stay numbers (YAML gives Helm floats: 1048576 must not
    # become 1.048576e+06), and updateStrategy reaches the StatefulSet.
    # (a values file, as users write it: --set would parse 1048576 as an integer)
    numbers = os.path.join(tmp, "numbers-values.yaml")
    with open(numbers, "w") as f:
        f.write("config:\n  queue-limit: 1048576\n  batch-window: 2ms\n  capacity: 1.5\nupdateStrategy: OnDelete\n")
    t = run([helm, "template", "brigade", CHART, "-f", numbers], env)
    docs = [d for d in yaml.safe_load_all(t.stdout) if d] if t.returncode == 0 else []
    ss = next((d for d in docs if d.get("kind") == "StatefulSet"), None)
    envs = {e["name"]: e.get("value") for e in ss["spec"]["template"]["spec"]["containers"][0]["env"]} if ss else {}
    got = (envs.get("BRIGADE_QUEUE_LIMIT"), envs.get("BRIGADE_BATCH_WINDOW"), envs.get("BRIGADE_CAPACITY"))
    check(got == ("1048576", "2ms", "1.5"), f"config: values render as written ({got})")
    strategy = ss["spec"]["updateStrategy"]["type"] if ss else None
    check(strategy == "OnDelete", f"updateStrategy=OnDelete reaches the StatefulSet ({strategy})")

    # Bad values: refused, naming the cause.
    for sets, want in ((["autoscaling.minReplicas=0"], "minReplicas"),
                       (["autoscaling.mode=always"], "autoscaling.mode"),
                       (["replica=3"], "Additional property replica"),
                       (["redis.url=redis://u:secret@redis:6379/0"], "redis.url"),
                       (["model.source=volume", "model.file=m.gguf"], "model.volume.claimName"),
                       (["model.source=image", "model.image.repository=x"], "model.file"),
                       (["config.Max_Batch=3"], "config"),
                       (["updateStrategy=Recreate"], "updateStrategy")):
        t = run([helm, "template", "brigade", CHART] + [a for s in sets for a in ("--set", s)], env)
        out = helm_out(t)
        check(t.returncode != 0 and want in out, f"--set {' '.join(sets)} is refused naming {want}" +
              ("" if t.returncode != 0 and want in out else ": " + out[-400:]))

    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def promql(what, expr, tmp):
    rules = os.path.join(tmp, "query-rules.yml")
    with open(rules, "w") as f:
        yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "brigade:query:check", "expr": expr}]}]}, f)
    p = run(["promtool", "check", "rules", rules])
    check(p.returncode == 0, what + " parses in promtool" + ("" if p.returncode == 0 else ": " + p.stdout + p.stderr))


def adapter_queries(name, cfg, tmp):
    # prometheus-adapter fills <<.Series>>, <<.LabelMatchers>> (from the HPA's selector, possibly none)
    # and <<.GroupBy>> (unused by an External rule's max()).
    for rule in cfg["rules"]["external"]:
        for matchers in ("", 'namespace="serving",service="brigade"'):
            q = (rule["metricsQuery"].replace("<<.Series>>", rule["seriesQuery"])
                 .replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", "namespace"))
            promql(f"{name}: the adapter's metricsQuery as {q}", q, tmp)


if __name__ == "__main__":
    sys.exit(main())
