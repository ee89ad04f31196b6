#!/usr/bin/env python3
"""Checks deploy/: renders each kustomization with `kubectl kustomize` and checks what comes out.

  check_deploy.py KUBECTL KILN SOURCE_DIR

- deploy/base renders exactly the expected objects (kind and name), all but the Namespace in
  namespace kiln;
- the Role grants exactly the documented verbs (deploy/base/role.yaml; a change there must
  change EXPECTED_RULES here, on purpose);
- the Deployment runs `kiln server` with flags that `kiln server --help` lists, runs as the
  ServiceAccount bound to the Role, probes the server's /healthz and /readyz, mounts
  every volume it names, and passes as --artifact-pvc the claim it mounts at
  <data-dir>/artifacts;
- deploy/overlays/example renders with its namespace and image, and passes that image as
  --agent-image.
Exits 1 with one line per problem.
"""
import re
import subprocess
import sys

import yaml

EXPECTED_OBJECTS = {
    ("Namespace", "kiln"),
    ("ServiceAccount", "kiln"),
    ("Role", "kiln"),
    ("RoleBinding", "kiln"),
    ("PersistentVolumeClaim", "kiln-data"),
    ("PersistentVolumeClaim", "kiln-artifacts"),
    ("Deployment", "kiln"),
    ("Service", "kiln"),
}

# (apiGroup, resource) -> verbs: the requests of executor/kubernetes_step_runner.cc.
EXPECTED_RULES = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete", "deletecollection"},
    ("", "persistentvolumeclaims"): {"create", "get", "deletecollection"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
}

problems = []


def problem(text):
    problems.append(text)


def render(kubectl, folder):
    r = subprocess.run([kubectl, "kustomize", folder], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"kubectl kustomize {folder} failed: {r.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def server_flags(kiln):
    r = subprocess.run([kiln, "server", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"{kiln} server --help failed: {r.stderr.strip()}")
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", r.stdout))


def check_base(objects, flags):
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    if set(by_key) != EXPECTED_OBJECTS or len(objects) != len(by_key):
        problem(f"deploy/base renders {sorted(by_key)}, expected {sorted(EXPECTED_OBJECTS)}")
    for (kind, name), o in by_key.items():
        ns = o["metadata"].get("namespace")
        if kind != "Namespace" and ns != "kiln":
            problem(f"{kind} {name} is in namespace {ns!r}, expected 'kiln'")

    role = by_key.get(("Role", "kiln"))
    if role:
        granted = {}
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    granted.setdefault((group, resource), set()).update(rule.get("verbs", []))
        if granted != EXPECTED_RULES:
            problem(f"Role kiln grants {sorted((k, sorted(v)) for k, v in granted.items())}, expected "
                    f"{sorted((k, sorted(v)) for k, v in EXPECTED_RULES.items())}")

    binding = by_key.get(("RoleBinding", "kiln"))
    if binding:
        if binding["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kiln"}:
            problem(f"RoleBinding kiln binds {binding['roleRef']}, expected Role kiln")
        if {(s["kind"], s["name"]) for s in binding.get("subjects", [])} != {("ServiceAccount", "kiln")}:
            problem(f"RoleBinding kiln's subjects are {binding.get('subjects')}, expected ServiceAccount kiln")

    pvc = by_key.get(("PersistentVolumeClaim", "kiln-artifacts"))
    if pvc:
        if pvc["spec"].get("accessModes") != ["ReadWriteMany"]:
            problem(f"PVC kiln-artifacts has accessModes {pvc['spec'].get('accessModes')}, expected ReadWriteMany")
        if not pvc["spec"].get("resources", {}).get("requests", {}).get("storage"):
            problem("PVC kiln-artifacts has no storage request")

    deployment = by_key.get(("Deployment", "kiln"))
    if not deployment:
        return
    pod = deployment["spec"]["template"]["spec"]
    if pod.get("serviceAccountName") != "kiln":
        problem(f"Deployment kiln runs as {pod.get('serviceAccountName')!r}, expected ServiceAccount kiln")
    containers = pod.get("containers", [])
    if len(containers) != 1:
        problem(f"Deployment kiln has {len(containers)} containers, expected 1")
        return
    c = containers[0]
    args = c.get("args", [])
    if not args or args[0] != "server":
        problem(f"Deployment kiln's args {args} do not start with the subcommand 'server'")
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--") or flag not in flags:
            problem(f"Deployment kiln passes {arg!r}: {flag} is not a flag of `kiln server` ({sorted(flags)})")
    given = {a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else "" for a in args[1:]}
    if given.get("--executor") != "kubernetes":
        problem("Deployment kiln does not pass --executor=kubernetes")
    listen_port = given.get("--listen", ":").rsplit(":", 1)[1]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if str(ports.get("http")) != listen_port:
        problem(f"container port http {ports.get('http')} is not the --listen port {listen_port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = c.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or got.get("port") not in ("http", ports.get("http")):
            problem(f"{probe} is {got}, expected GET {path} on the http port")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    for path, name in mounts.items():
        if name not in volumes:
            problem(f"volumeMount {path} names volume {name!r}, which the pod does not have")
    for flag in ("--data-dir", "--auth-tokens"):
        value = given.get(flag, "")
        if not any(value == p or value.startswith(p.rstrip("/") + "/") for p in mounts):
            problem(f"{flag}={value} is not on a mounted volume ({sorted(mounts)})")
    # The artifact claim the step pods mount is the one the server sees at <data-dir>/artifacts.
    by_claim = {v["persistentVolumeClaim"]["claimName"]: v["name"] for v in pod.get("volumes", [])
                if "persistentVolumeClaim" in v}
    artifact_mount = given.get("--data-dir", "").rstrip("/") + "/artifacts"
    pvc = given.get("--artifact-pvc", "")
    if not pvc or mounts.get(artifact_mount) != by_claim.get(pvc):
        problem(f"--artifact-pvc={pvc} is not the claim mounted at {artifact_mount}")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    if claims != {"kiln-data", "kiln-artifacts"}:
        problem(f"the pod mounts the claims {sorted(claims)}, expected kiln-data and kiln-artifacts")
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problem("the pod does not set runAsNonRoot: true")


def check_overlay(objects):
    for o in objects:
        ns = o["metadata"].get("namespace")
        if o["kind"] == "Namespace":
            if o["metadata"]["name"] != "ml-pipelines":
                problem(f"the example overlay renames the Namespace to {o['metadata']['name']!r}, expected ml-pipelines")
        elif ns != "ml-pipelines":
            problem(f"example overlay: {o['kind']} {o['metadata']['name']} is in namespace {ns!r}")
        if o["kind"] == "Deployment":
            image = o["spec"]["template"]["spec"]["containers"][0]["image"]
            if image != "registry.example.com/ml/kiln:0.1.0":
                problem(f"example overlay: the image is {image!r}")
            args = o["spec"]["template"]["spec"]["containers"][0].get("args", [])
            if f"--agent-image={image}" not in args:
                problem(f"example overlay: the args {args} do not pass --agent-image={image}")


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    kubectl, kiln, source = sys.argv[1:]
    check_base(render(kubectl, f"{source}/deploy/base"), server_flags(kiln))
    check_overlay(render(kubectl, f"{source}/deploy/overlays/example"))
    for p in problems:
        print(f"check_deploy: {p}", file=sys.stderr)
    if not problems:
        print("check_deploy: deploy/base and deploy/overlays/example are as expected")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
