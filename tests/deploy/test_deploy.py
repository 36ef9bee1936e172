#!/usr/bin/env python3
"""deploy/kubernetes: the manifests' structure, and the DaemonSet's entry script run for real.

    python3 tests/deploy/test_deploy.py --build-dir BUILD [--source-root DIR]

No Kubernetes runs here, and Debian's kubectl needs a server even for a dry run: the manifests are parsed
(PyYAML), validated against the API schema of each kind (npm's kubernetes-models, validate.mjs; types,
required fields, enumerations), and checked field by field against what the rest of the tree says (the
entry script's path and variables, the Containerfile, the hooks' default overhead cap, the label the
RuntimeClass selects, the service account's rights). Then deploy/kubernetes/vmm-cgroup-deploy runs as the DaemonSet runs it,
`run` until SIGTERM, against a host root in a temporary directory: the built hooks, wrapper, vmm-cgroupctl
and vmm-cgroup-install; Debian's containerd config.toml or a CRI-O drop-in set from tests/data; systemctl
and kubectl replaced by stubs that record their arguments. Needs no root. Exit 1 names each problem.
"""
import argparse
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
try:
    import yaml
except ImportError:  # a python3 of its own (pyenv) without PyYAML: Debian's has python3-yaml (scripts/setup)
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.access("/usr/bin/python3", os.X_OK):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("test_deploy: PyYAML missing (python3-yaml)")

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_ENV = "VMMCG_K8S_MODELS"
DEFAULT_MODELS = "/var/cache/vmmcg-k8s-models"  # npm's kubernetes-models, installed there by scripts/setup
EXECUTABLES = ["vmm-cgroup-create-runtime", "vmm-cgroup-poststart", "vmm-cgroup-poststop",
               "vmm-cgroup-runtime"]
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >>"{log}"
case "$*" in
*"is-active --quiet {active}.service"*) exit 0 ;;
*is-active*) exit 3 ;;
esac
"""

problems = []


def check(condition, what):
    if not condition:
        problems.append(what)
    return condition


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if d.get("kind") == "Kustomization":  # kustomize's file, not an API object: no metadata
            d.setdefault("metadata", {"name": "kustomization"})
        check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
              f"{os.path.basename(path)}: an object without apiVersion, kind or metadata.name")
    return [d for d in docs if d.get("metadata", {}).get("name")]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def check_manifests(root):
    d = os.path.join(root, "deploy", "kubernetes")
    objects = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".yaml"):
            for o in load(os.path.join(d, name)):
                objects[(o["kind"], o["metadata"]["name"])] = (name, o)
    kinds = {k for k, _ in objects}
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "RuntimeClass", "Pod",
                 "Kustomization"):
        check(kind in kinds, f"deploy/kubernetes: no {kind}")
    if problems:
        return
    by_kind = {}
    for (kind, _), (_, o) in objects.items():
        by_kind.setdefault(kind, []).append(o)
    kust = by_kind["Kustomization"][0]
    files = {objects[k][0] for k in objects if k[0] not in ("Kustomization", "Pod")}
    check(set(kust.get("resources", [])) == files,
          f"kustomization.yaml: resources {kust.get('resources')}, the manifests are {sorted(files)}")

    ds = by_kind["DaemonSet"][0]
    check(ds["apiVersion"] == "apps/v1", "DaemonSet: apiVersion apps/v1")
    spec = ds["spec"]["template"]["spec"]
    check(ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items(),
          "DaemonSet: the selector does not select its pods")
    check(spec.get("hostPID") is True, "DaemonSet: hostPID is not true (nsenter --target 1)")
    (container,) = spec["containers"]
    check(container.get("securityContext", {}).get("privileged") is True,
          "DaemonSet: the container is not privileged")
    env = env_of(container)
    check(env.get("NODE_NAME") == {"fieldRef": {"fieldPath": "spec.nodeName"}},
          "DaemonSet: NODE_NAME not from spec.nodeName")
    script = open(os.path.join(d, "vmm-cgroup-deploy")).read()
    for name in env:
        check(re.search(rf"^#   {name}\s", script, re.M) and f"${{{name}" in script,
              f"DaemonSet: env {name} is not a documented variable of vmm-cgroup-deploy")
    check(env.get("ENGINE") in ("auto", "containerd", "crio"), f"DaemonSet: ENGINE {env.get('ENGINE')}")
    containerfile = open(os.path.join(d, "Containerfile")).read()
    m = re.search(r"^COPY vmm-cgroup-deploy (\S+)$", containerfile, re.M)
    check(m and container["command"] == [m.group(1), "run"],
          f"DaemonSet: command {container['command']}, the Containerfile installs the script at "
          f"{m.group(1) if m else '?'}")
    check(re.search(r"apt-get install .*vmm-cgroup-hooks_\*\.deb", containerfile),
          "Containerfile: the package is not installed")
    tag = container["image"].rsplit(":", 1)[1]
    check(tag in containerfile, f"Containerfile: the image tag {tag} is not the one it documents")
    check(container["readinessProbe"]["exec"]["command"][-1] in script,
          "DaemonSet: the readiness probe's file is not the script's READY_FILE")
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    host_root = [m for n, m in mounts.items() if volumes[n].get("hostPath", {}).get("path") == "/"]
    check(host_root and host_root[0]["mountPath"] == env.get("HOST_ROOT"),
          "DaemonSet: the host's / is not mounted at HOST_ROOT")
    check(spec.get("terminationGracePeriodSeconds", 30) >= 60,
          "DaemonSet: too short a grace period for the uninstall")

    sa = spec["serviceAccountName"]
    check(("ServiceAccount", sa) in objects, f"DaemonSet: service account {sa} is not defined")
    binding = by_kind["ClusterRoleBinding"][0]
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": ds["metadata"]["namespace"]}
    check(subject in binding["subjects"], "ClusterRoleBinding: not to the DaemonSet's service account")
    role = objects.get(("ClusterRole", binding["roleRef"]["name"]), (None, {}))[1]
    check(any("nodes" in r["resources"] and {"get", "patch"} <= set(r["verbs"]) for r in role.get("rules", [])),
          "ClusterRole: the service account may not get and patch nodes (kubectl label)")

    rc = by_kind["RuntimeClass"][0]
    check(rc["apiVersion"] == "node.k8s.io/v1", "RuntimeClass: apiVersion node.k8s.io/v1")
    check(rc["handler"] == env.get("HANDLER"),
          f"RuntimeClass: handler {rc['handler']}, the DaemonSet registers {env.get('HANDLER')}")
    check(rc["scheduling"]["nodeSelector"] == {env.get("NODE_LABEL"): env.get("HANDLER")},
          "RuntimeClass: nodeSelector is not the label vmm-cgroup-deploy sets")
    config_h = open(os.path.join(root, "common", "config.h")).read()
    cap = re.search(r"overhead_cap_min_millicpus = (\d+);", config_h).group(1)
    check(rc["overhead"]["podFixed"]["cpu"] == f"{cap}m",
          f"RuntimeClass: overhead.podFixed.cpu {rc['overhead']['podFixed']['cpu']}, "
          f"the hooks' minimum cap is {cap}m")
    pod = by_kind["Pod"][0]
    check(pod["spec"]["runtimeClassName"] == rc["metadata"]["name"], "vm-pod.yaml: not of the RuntimeClass")
    check("debug-threads=on" in " ".join(pod["spec"]["containers"][0]["command"]),
          "vm-pod.yaml: QEMU without debug-threads")
    return env


def validate_schema(root):
    """Every object of the manifests against the API schema of its kind (tests/deploy/validate.mjs)."""
    d = os.path.join(root, "deploy", "kubernetes")
    objects = [o for name in sorted(os.listdir(d)) if name.endswith(".yaml")
               for o in load(os.path.join(d, name)) if o["kind"] != "Kustomization"]
    models = os.environ.get(MODELS_ENV, DEFAULT_MODELS)
    if not check(shutil.which("node"), "node not found (scripts/setup installs Node.js)"):
        return
    p = subprocess.run(["node", os.path.join(HERE, "validate.mjs"), models], input=json.dumps(objects),
                       capture_output=True, text=True, timeout=60)
    for line in p.stdout.splitlines():
        check(line.startswith("ok "), f"schema: {line}")
    check(p.returncode == 0 and len(p.stdout.splitlines()) == len(objects),
          f"schema: validate.mjs exit {p.returncode}: {p.stderr.strip()}")
    print(f"{'PASS' if p.returncode == 0 else 'FAIL'} schema ({len(objects)} objects, kubernetes-models)")


class Host:
    """A host root in a temporary directory, the package's executables from the build, stubs for systemctl
    and kubectl, and the script run with the DaemonSet's environment."""

    def __init__(self, root, build, engine, ds_env):
        self.dir = tempfile.mkdtemp(prefix="vmmcg-deploy-")
        self.root = os.path.join(self.dir, "host")
        self.package = os.path.join(self.dir, "package")
        os.makedirs(self.package)
        for name in EXECUTABLES + ["vmm-cgroup-systemd"]:
            src = os.path.join(build, "runtime" if name == "vmm-cgroup-runtime" else "hooks", name)
            shutil.copy2(src, self.package)
        shutil.copy2(os.path.join(build, "ctl", "vmm-cgroupctl"), self.package)
        self.log = os.path.join(self.dir, "calls.log")
        for stub in ("systemctl", "kubectl"):
            path = os.path.join(self.dir, stub)
            with open(path, "w") as f:
                f.write(STUB.format(log=self.log, active=engine))
            os.chmod(path, 0o755)
        os.makedirs(os.path.join(self.root, "usr", "bin"))
        with open(os.path.join(self.root, "usr", "bin", "runc"), "w") as f:  # the installer checks it is there
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(self.root, "usr", "bin", "runc"), 0o755)
        self.ready = os.path.join(self.dir, "ready")
        self.env = dict(os.environ, **{k: v for k, v in ds_env.items() if isinstance(v, str)})
        self.env.update(NODE_NAME="node-1", HOST_ROOT=self.root, SYSTEMCTL=os.path.join(self.dir, "systemctl"),
                        KUBECTL=os.path.join(self.dir, "kubectl"), PACKAGE_DIR=self.package,
                        VMMCG_INSTALL=os.path.join(build, "install", "vmm-cgroup-install"),
                        VMMCG_CTL=os.path.join(self.package, "vmm-cgroupctl"), READY_FILE=self.ready)
        self.script = os.path.join(root, "deploy", "kubernetes", "vmm-cgroup-deploy")
        self.prefix = ds_env["HOST_PREFIX"]
        self.target = self.host_path(self.prefix + "/libexec/vmm-cgroup-hooks")

    def host_path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def calls(self):
        return open(self.log).read().splitlines() if os.path.exists(self.log) else []

    def run_until_term(self, name, on_ready):
        """`vmm-cgroup-deploy run` until it is ready, on_ready(name), then SIGTERM and its uninstall."""
        out = open(os.path.join(self.dir, "output.log"), "w")
        p = subprocess.Popen(["sh", self.script, "run"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ok = check(os.path.exists(self.ready), f"{name}: not ready after install (exit {p.poll()}): {self.output()}")
        if ok:
            on_ready(name)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "none, killed"
        check(rc == 0, f"{name}: exit {rc} after SIGTERM: {self.output()}")
        check(not os.path.exists(self.ready), f"{name}: still ready after uninstall")

    def output(self):
        return open(os.path.join(self.dir, "output.log")).read().strip().replace("\n", " | ")

    def check_installed(self, name):
        for exe in EXECUTABLES:
            path = os.path.join(self.target, exe)
            check(os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o755 and
                  filecmp.cmp(path, os.path.join(self.package, exe), shallow=False),
                  f"{name}: {path} is not a copy of the package's {exe}, mode 0755")
        check(not [f for f in os.listdir(self.target) if f.startswith(".")], f"{name}: a temporary file left")
        # The operator's command on the host, static like the hooks: it runs there as it is.
        ctl = self.host_path(self.prefix + "/sbin/vmm-cgroupctl")
        if check(os.path.isfile(ctl) and os.stat(ctl).st_mode & 0o777 == 0o755 and
                 filecmp.cmp(ctl, os.path.join(self.package, "vmm-cgroupctl"), shallow=False),
                 f"{name}: {ctl} is not a copy of the package's vmm-cgroupctl, mode 0755"):
            p = subprocess.run([ctl, "--version"], capture_output=True, text=True, timeout=10)
            check(p.returncode == 0 and p.stdout.startswith("vmm-cgroupctl "),
                  f"{name}: the copied vmm-cgroupctl --version: exit {p.returncode}: {p.stderr.strip()}")
        check(not [f for f in os.listdir(os.path.dirname(ctl)) if f.startswith(".")],
              f"{name}: a temporary file of vmm-cgroupctl left")
        # this host root has no dynamic linker or libsystemd: the helper cannot start there (the package
        # suite's Debian root keeps it)
        check(not os.path.lexists(os.path.join(self.target, "vmm-cgroup-systemd")) and
              "vmm-cgroup-systemd not copied" in self.output(),
              f"{name}: the systemd helper copied to a host root it cannot start on: {self.output()}")
        with open(self.host_path("/etc/vmm-cgroup-hooks/runtime.json")) as f:
            runtime = json.load(f)
        check(runtime.get("hook_dir") == self.prefix + "/libexec/vmm-cgroup-hooks",
              f"{name}: runtime.json hook_dir {runtime.get('hook_dir')}")
        check("kubectl label node node-1 vmm-cgroup-hooks/handler=vmm --overwrite" in self.calls(),
              f"{name}: the node was not labelled: {self.calls()}")

    def close(self):
        shutil.rmtree(self.dir)


def case_containerd(root, build, env):
    name = "containerd"
    host = Host(root, build, "containerd", env)
    try:
        config = host.host_path("/etc/containerd/config.toml")
        os.makedirs(os.path.dirname(config))
        original = os.path.join(root, "tests", "data", "containerd", "debian-config.toml")
        shutil.copy2(original, config)
        os.makedirs(host.host_path("/run/vmm-cgroup-hooks"))
        calls_before = []

        def installed(case):
            host.check_installed(case)
            text = open(config).read()
            check(f'BinaryName = "{host.prefix}/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime"' in text,
                  f"{case}: config.toml has no BinaryName of the copied wrapper")
            check(filecmp.cmp(config + ".vmmcg-backup", original, shallow=False), f"{case}: no backup of the original")
            calls_before[:] = host.calls()

        host.run_until_term(name, installed)
        calls = host.calls()
        check(calls_before and "systemctl is-active --quiet crio.service" in calls_before and
              "systemctl restart containerd.service" in calls_before,
              f"{name}: ENGINE=auto did not find containerd and restart it: {calls_before}")
        after = calls[len(calls_before):]
        check(after[:1] == ["kubectl label node node-1 vmm-cgroup-hooks/handler-"],
              f"{name}: the label is not removed first: {after}")
        check("systemctl restart containerd.service" in after, f"{name}: containerd not restarted after uninstall")
        check(filecmp.cmp(config, original, shallow=False), f"{name}: config.toml is not the original after uninstall")
        check(not os.path.exists(config + ".vmmcg-backup"), f"{name}: the backup is left")
        check(not os.path.exists(host.host_path("/etc/vmm-cgroup-hooks")), f"{name}: /etc/vmm-cgroup-hooks left")
        check(not os.path.exists(host.host_path(host.prefix)), f"{name}: {host.prefix} left")

        # A split container still running: its poststop needs the hooks, which stay.
        with open(host.host_path("/run/vmm-cgroup-hooks/abc"), "w") as f:
            f.write("{}")
        host.run_until_term(name + " (a record left)", host.check_installed)
        check(os.path.isfile(os.path.join(host.target, "vmm-cgroup-poststop")),
              f"{name} (a record left): the hooks were removed while a record was there")
        check(filecmp.cmp(config, original, shallow=False), f"{name} (a record left): config.toml not the original")
    finally:
        host.close()


def case_crio(root, build, env):
    name = "crio"
    host = Host(root, build, "crio", env)
    try:
        etc = host.host_path("/etc/crio")
        shutil.copytree(os.path.join(root, "tests", "data", "crio"), etc, symlinks=True)
        os.remove(os.path.join(etc, "broken.conf"))
        before = sorted(os.listdir(os.path.join(etc, "crio.conf.d")))
        drop_in = os.path.join(etc, "crio.conf.d", "50-vmm-cgroup-hooks.conf")

        def installed(case):
            host.check_installed(case)
            text = open(drop_in).read() if os.path.exists(drop_in) else ""
            check(f'runtime_path = "{host.prefix}/libexec/vmm-cgroup-hooks/vmm-cgroup-runtime"' in text,
                  f"{case}: no CRI-O drop-in naming the copied wrapper")
            check("systemctl reload crio.service" in host.calls(), f"{case}: crio not reloaded: {host.calls()}")

        host.run_until_term(name, installed)
        check(sorted(os.listdir(os.path.join(etc, "crio.conf.d"))) == before, f"{name}: the drop-in is left")
        check(host.calls().count("systemctl reload crio.service") == 2, f"{name}: crio not reloaded after uninstall")
        check(not os.path.exists(host.host_path(host.prefix)), f"{name}: {host.prefix} left")
    finally:
        host.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-root", default=os.path.dirname(os.path.dirname(HERE)))
    args = parser.parse_args()
    root, build = os.path.abspath(args.source_root), os.path.abspath(args.build_dir)
    start = time.monotonic()
    env = check_manifests(root)
    validate_schema(root)
    if env:
        for case in (case_containerd, case_crio):
            count = len(problems)
            case(root, build, env)
            print(f"{'FAIL' if len(problems) > count else 'PASS'} {case.__name__[5:]}", flush=True)
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{'FAIL' if problems else 'PASS'} deploy ({time.monotonic() - start:.1f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
