"""Shared code of the CRI suite (test_cri.py): a private containerd 1.6, a CRI client compiled at test time from
api.proto, OCI image archives built from host files, and the leftovers checks.

Everything this creates is named with PREFIX: the work dir /tmp/vmmcg-cri-<run> (containerd's root, state,
sockets, config, the runc root, the images, the logs), the cgroups (pod parents, the ctr container's, the
overhead root are top-level cgroups named PREFIX<run>-...). The containerd it starts reads only the
config.toml it is given (no imports) and never the host's /etc/containerd, /var/lib/containerd or
/run/containerd/containerd.sock; the one host path it shares is /run/containerd/s, where every containerd 1.6
shim puts its socket (named by a hash of containerd's address, so never another containerd's).
"""

import hashlib
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "e2e"))
import e2e_lib as L  # noqa: E402 (the host, placement reading and checking, cgroup cleanup)
import make_rootfs  # noqa: E402 (the QEMU root file system from host files)

PREFIX = "vmmcg-cri-"
K8S_NS = "k8s.io"  # the CRI plugin's containerd namespace
CTR_NS = "vmmcg-ctr"  # the namespace of the `ctr run` case, apart from the CRI's
SHIM_SOCKET_DIR = "/run/containerd/s"
DEBIAN_PYTHON = "/usr/bin/python3"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Failure = L.Failure
log = L.log


def ensure_debian_python(argv):
    """grpcio and grpc_tools are Debian packages of /usr/bin/python3: re-exec there when this interpreter (a
    pyenv or venv python first on PATH) lacks them."""
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
        return
    except ImportError:
        pass
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) and os.access(DEBIAN_PYTHON, os.X_OK):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + argv)
    raise Failure("python3-grpcio and python3-grpc-tools are not installed (scripts/setup installs them)")


# ----------------------------------------------------------------------------------------------------------
# The CRI client


class Cri:
    """The CRI's RuntimeService and ImageService over containerd's socket, from api.proto compiled into
    proto_dir. cri.call("RunPodSandbox", config=...) builds the request from keyword arguments."""

    def __init__(self, socket, proto_dir):
        import grpc
        from grpc_tools import protoc
        os.makedirs(proto_dir, exist_ok=True)
        rc = protoc.main(["protoc", f"-I{HERE}", f"--python_out={proto_dir}", f"--grpc_python_out={proto_dir}",
                          os.path.join(HERE, "api.proto")])
        if rc != 0:
            raise Failure(f"grpc_tools.protoc failed on {HERE}/api.proto (exit {rc})")
        sys.path.insert(0, proto_dir)
        self.pb = importlib.import_module("api_pb2")
        grpc_mod = importlib.import_module("api_pb2_grpc")
        sys.path.remove(proto_dir)
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.runtime = grpc_mod.RuntimeServiceStub(self.channel)
        self.images = grpc_mod.ImageServiceStub(self.channel)
        self.grpc = grpc

    def call(self, method, timeout=120, **fields):
        request = getattr(self.pb, method + "Request")(**fields)
        stub = self.images if method.startswith("Image") else self.runtime
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except self.grpc.RpcError as e:
            raise Failure(f"CRI {method}: {e.code().name}: {e.details()}") from None

    def close(self):
        self.channel.close()


# ----------------------------------------------------------------------------------------------------------
# Images: OCI archives from a directory tree, imported with ctr


class _HashingWriter(io.RawIOBase):
    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)


def _root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _layer(rootfs, out_path):
    """An uncompressed layer tar of rootfs (root-owned entries) at out_path; returns (digest, size)."""
    with open(out_path, "wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(os.listdir(rootfs)):
                if name != make_rootfs.MANIFEST:
                    tar.add(os.path.join(rootfs, name), arcname=name, filter=_root_owned)
    return "sha256:" + writer.sha.hexdigest(), writer.size


def _blob(doc):
    data = json.dumps(doc, separators=(",", ":")).encode()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tar, name, data):
    info = _root_owned(tarfile.TarInfo(name))
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def oci_archive(rootfs, name, out_path, entrypoint=()):
    """An OCI image layout archive (one uncompressed layer) of rootfs, named `name` for ctr import."""
    layer_path = out_path + ".layer"
    layer_digest, layer_size = _layer(rootfs, layer_path)
    config, config_digest = _blob({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [PATH_ENV], "Entrypoint": list(entrypoint) or None},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    manifest, manifest_digest = _blob({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": layer_size}],
    })
    index, _ = _blob({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]})
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tar, "index.json", index)
        for digest, data in ((config_digest, config), (manifest_digest, manifest)):
            _add_bytes(tar, "blobs/sha256/" + digest.split(":")[1], data)
        tar.add(layer_path, arcname="blobs/sha256/" + layer_digest.split(":")[1], filter=_root_owned)
    os.unlink(layer_path)
    return out_path


PAUSE_C = r"""
#include <signal.h>
#include <unistd.h>
static void done(int sig) { (void)sig; _exit(0); }
int main(void)
{
	signal(SIGINT, done);
	signal(SIGTERM, done);
	for (;;)
		pause();
}
"""


def pause_rootfs(directory):
    """A root file system holding only /pause, a static binary that waits for a signal."""
    os.makedirs(directory)
    source = os.path.join(directory + ".c")
    with open(source, "w") as f:
        f.write(PAUSE_C)
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise Failure("gcc is needed to build the pause image")
    L.run([cc, "-static", "-O2", "-o", os.path.join(directory, "pause"), source])
    os.unlink(source)
    for d in ("dev", "proc", "sys", "etc", "tmp"):
        os.makedirs(os.path.join(directory, d))
    return directory


# ----------------------------------------------------------------------------------------------------------
# containerd


CONFIG_TOML = """# Written by the CRI suite: containerd 1.6, every path its own. No `imports`: in 1.6 and 1.7 a drop-in
# replaces whole plugin sections, so the one file says everything.
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""
  level = "{log_level}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # root here lacks CAP_SYS_RESOURCE: runc could not lower oom_score_adj below containerd's own
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    # The default handler: plain runc; the project's annotations reach the spec (and are ignored).
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["io.vmm-cgroup-hooks.*"]
      container_annotations = ["io.vmm-cgroup-hooks.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc_root}"
        SystemdCgroup = false

# The handler of the RuntimeClass ("vmm", the wrapper as runc's binary) is not here: vmm-cgroup-install adds
# it, and containerd is restarted on what it wrote.
"""


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def processes_with_arg(arg):
    """pids whose command line has the exact argument arg (e.g. containerd's socket path)."""
    want = arg.encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and want in cmdline(entry):
            found.append(int(entry))
    return sorted(found)


class Containerd:
    """containerd with its own root, state, sockets and config.toml (below workdir, or at config); the
    wrapper's runtime.json reaches the wrapper through the environment (VMMCG_RUNTIME_CONFIG), which the shim
    and runc inherit."""

    def __init__(self, workdir, runtime_config, pause_image, log_level="info", config=None):
        self.dir = workdir
        d = lambda *p: os.path.join(workdir, *p)  # noqa: E731
        self.root, self.state, self.runc_root = d("root"), d("state"), d("runc")
        self.socket = d("c.sock")
        self.log_path = d("containerd.log")
        for sub in ("root", "state", "runc", "opt", "cni/bin", "cni/conf", "fifo"):
            os.makedirs(d(sub), exist_ok=True)
        self.config = config or d("config.toml")
        os.makedirs(os.path.dirname(self.config), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(CONFIG_TOML.format(root=self.root, state=self.state, socket=self.socket, opt=d("opt"),
                                       log_level=log_level, pause_image=pause_image, cni_bin=d("cni/bin"),
                                       cni_conf=d("cni/conf"), runc_root=self.runc_root))
        self.env = {"PATH": PATH_ENV.split("=", 1)[1], "LANG": "C.UTF-8", "HOME": workdir}
        if runtime_config:
            self.env["VMMCG_RUNTIME_CONFIG"] = runtime_config
        self.proc = None
        self.cri = None
        self.shim_sockets = set()

    def start(self, timeout=30):
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, env=self.env, start_new_session=True)
        self.cri = Cri(self.socket, os.path.join(self.dir, "proto"))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"containerd exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                return self.cri.call("Version", timeout=2)
            except Failure:
                if time.monotonic() > deadline:
                    raise Failure(f"containerd's CRI did not answer within {timeout}s: {self.log_tail()}")
                time.sleep(0.2)

    def restart(self, runtime_config=None):
        """Stops this containerd (by pid) and starts it again on its config.toml, as `systemctl restart
        containerd` does after an install; runtime_config: the wrapper's runtime.json from now on."""
        self.stop()
        if runtime_config:
            self.env["VMMCG_RUNTIME_CONFIG"] = runtime_config
        return self.start()

    def log_tail(self, lines=15, grep=None):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read().splitlines()
        except OSError:
            return ""
        if grep:
            text = [t for t in text if grep in t]
        return " | ".join(text[-lines:])

    def ctr(self, *args, namespace=K8S_NS, check=True, timeout=180):
        return L.run(["ctr", "--address", self.socket, "--namespace", namespace, *args], check=check,
                     timeout=timeout, env=self.env)

    def import_image(self, archive, namespace=K8S_NS):
        self.ctr("images", "import", archive, namespace=namespace, timeout=300)

    def note_shim(self, namespace, shim_id):
        """The socket a shim of ours listens on (/run/containerd/s/<sha256 of address/namespace/id>)."""
        self.shim_sockets.add(self.shim_socket(namespace, shim_id))

    def shim_socket(self, namespace, shim_id):
        digest = hashlib.sha256(os.path.join(self.socket, namespace, shim_id).encode()).hexdigest()
        return os.path.join(SHIM_SOCKET_DIR, digest)

    def check_shim_socket(self, namespace, shim_id):
        """The socket of a running shim is where note_shim says (so that the final check means something)."""
        if not os.path.exists(self.shim_socket(namespace, shim_id)):
            raise Failure(f"no shim socket {self.shim_socket(namespace, shim_id)} for {namespace}/{shim_id}: "
                          f"has containerd's naming changed? ({sorted(os.listdir(SHIM_SOCKET_DIR))[:5]})")

    def shims(self):
        """pids of the shims this containerd started (they carry its socket as -address)."""
        return [p for p in processes_with_arg(self.socket) if p != (self.proc.pid if self.proc else None)]

    def task_dir(self, namespace, cid):
        return os.path.join(self.state, "io.containerd.runtime.v2.task", namespace, cid)

    def bundle_config(self, namespace, cid):
        with open(os.path.join(self.task_dir(namespace, cid), "config.json")) as f:
            return json.load(f)

    def state_leftovers(self, namespace, cid):
        """containerd's and runc's state for cid that still exists."""
        paths = [self.task_dir(namespace, cid), os.path.join(self.runc_root, namespace, cid)]
        if namespace == K8S_NS:
            cri_root = os.path.join(self.root, "io.containerd.grpc.v1.cri")
            cri_state = os.path.join(self.state, "io.containerd.grpc.v1.cri")
            paths += [os.path.join(cri_root, kind, cid) for kind in ("containers", "sandboxes")]
            paths += [os.path.join(cri_state, kind, cid) for kind in ("containers", "sandboxes")]
        left = [p for p in paths if os.path.lexists(p)]
        left += [f"mount {p}" for p, _, _ in L._mountinfo() if f"/{cid}/" in p + "/" and p.startswith(self.dir)]
        # containerd's metadata: the container record and its snapshot (keyed by the container id)
        for what in ("containers", "snapshots"):
            listed = self.ctr(what, "list", namespace=namespace, check=False, timeout=30).stdout.split()
            left += [f"ctr {what} list: {cid}" for word in listed if word == cid]
        return left

    def remove_everything(self):
        """Best effort, while containerd runs: every pod and every ctr container. Returns problems."""
        problems = []
        try:
            for pod in self.cri.call("ListPodSandbox", timeout=30).items:
                for method in ("StopPodSandbox", "RemovePodSandbox"):
                    try:
                        self.cri.call(method, pod_sandbox_id=pod.id, timeout=60)
                    except Failure as e:
                        problems.append(str(e))
        except Failure as e:
            problems.append(str(e))
        out = self.ctr("containers", "list", "--quiet", namespace=CTR_NS, check=False, timeout=30)
        for cid in out.stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, namespace=CTR_NS, check=False, timeout=30)
            L.wait_until(lambda: "STOPPED" in self.ctr("tasks", "list", namespace=CTR_NS, check=False).stdout
                         or cid not in self.ctr("tasks", "list", namespace=CTR_NS, check=False).stdout, 10)
            self.ctr("tasks", "delete", "--force", cid, namespace=CTR_NS, check=False, timeout=60)
            r = self.ctr("containers", "delete", cid, namespace=CTR_NS, check=False, timeout=60)
            if r.returncode != 0:
                problems.append(f"ctr containers delete {cid}: {r.stderr.strip()}")
        return problems

    def stop(self, timeout=20):
        """SIGTERM to the containerd this started (by pid), SIGKILL after timeout."""
        if self.cri:
            self.cri.close()
            self.cri = None
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def teardown(self):
        """Everything it made: pods, containers, containerd, its shims (by pid), the sockets of its shims, mounts
        below workdir. Returns problems (never raises); the caller removes workdir and the cgroups."""
        problems = []
        if self.proc and self.proc.poll() is None and self.cri:
            try:
                problems += self.remove_everything()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                problems.append(f"removing pods and containers: {e}")
        self.stop()
        shims = self.shims()
        if shims:
            problems.append(f"shims still running after containerd stopped: {shims}")
            L.kill_pids(shims)
            L.wait_until(lambda: not self.shims(), 10)
        for sock in self.shim_sockets:
            if os.path.lexists(sock):
                problems.append(f"shim socket left: {sock}")
                os.unlink(sock)
        for point in sorted((p for p, _, _ in L._mountinfo() if p.startswith(self.dir + "/")),
                            key=lambda p: p.count("/"), reverse=True):
            if L.run(["umount", point], check=False).returncode != 0:
                L.run(["umount", "-l", point], check=False)
        return problems


def make_workdir(run_id):
    """/tmp/vmmcg-cri-<run>, new, mode 0700. Short: containerd's socket path must fit in sun_path."""
    path = os.path.join(tempfile.gettempdir(), PREFIX + run_id)
    os.mkdir(path, 0o700)
    return path


def remove_workdir(path):
    if path and os.path.basename(path).startswith(PREFIX):
        for point in sorted((p for p, _, _ in L._mountinfo() if p.startswith(path + "/")),
                            key=lambda p: p.count("/"), reverse=True):
            L.run(["umount", "-l", point], check=False)
        shutil.rmtree(path, ignore_errors=True)
