"""The kernel's process events connector (NETLINK_CONNECTOR, CN_IDX_PROC), as the benchmark listens to it.

Every fork, exec, exit and comm change on the host comes as one datagram with the kernel's CLOCK_MONOTONIC
timestamp (ktime_get_ns): the benchmark takes from it when the VMM exec'd and when each of its threads was
created, without polling. Needs CAP_NET_ADMIN in the initial user namespace and the initial pid namespace
(the kernel ignores a subscription from anywhere else, silently: start() checks that events come).
"""
import errno
import socket
import struct
import threading
import time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
EV_FORK, EV_EXEC, EV_COMM = 0x1, 0x2, 0x200
HEADER = 16 + 20  # nlmsghdr, cn_msg
NLMSG = struct.Struct("=IHHII")
CN_MSG = struct.Struct("=IIIIHH")


class Listener:
    """Records, for the process ids it is told to watch, the exec and every thread's creation."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, CN_IDX_PROC))
        self.sock.settimeout(0.2)  # so that close() ends the reader
        self.lock = threading.Lock()
        self.watched = {}  # tgid -> {"exec": ns, "threads": {tid: ns}}
        self.events = 0
        self.lost = 0
        self.running = True
        self.thread = None

    def _control(self, op):
        payload = struct.pack("=I", op)
        msg = CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self.sock.send(NLMSG.pack(NLMSG.size + len(msg), NLMSG_DONE, 0, 0, 0) + msg)

    def start(self):
        self._control(PROC_CN_MCAST_LISTEN)
        self.thread = threading.Thread(target=self._run, name="proc-events", daemon=True)
        self.thread.start()
        # The kernel does not refuse a subscription it ignores: an exec of our own must come back.
        import os
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.read(go_r, 1)
                os.execv("/bin/true", ["/bin/true"])
            finally:
                os._exit(127)
        os.close(go_r)
        self.watch(pid)
        os.write(go_w, b"g")
        os.close(go_w)
        os.waitpid(pid, 0)
        probe = type("Probe", (), {"pid": pid})
        deadline = time.monotonic() + 2
        while self.exec_time(probe.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        ok = self.exec_time(probe.pid) is not None
        self.forget(probe.pid)
        return ok

    def watch(self, tgid):
        with self.lock:
            self.watched[tgid] = {"exec": None, "threads": {}, "names": {}}

    def forget(self, tgid):
        with self.lock:
            self.watched.pop(tgid, None)

    def exec_time(self, tgid):
        with self.lock:
            entry = self.watched.get(tgid)
            return entry and entry["exec"]

    def thread_times(self, tgid):
        with self.lock:
            entry = self.watched.get(tgid)
            return dict(entry["threads"]) if entry else {}

    def name_times(self, tgid):
        """tid -> [(ns, name)]: every comm change of the process's threads (a thread naming itself)."""
        with self.lock:
            entry = self.watched.get(tgid)
            return {tid: list(names) for tid, names in entry["names"].items()} if entry else {}

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                if not self.running:
                    return
                raise
            offset = 0
            while offset + HEADER + 16 <= len(data):
                length = NLMSG.unpack_from(data, offset)[0]
                what, _cpu, ts = struct.unpack_from("=IIQ", data, offset + HEADER)
                body = offset + HEADER + 16
                self.events += 1
                if what == EV_FORK:
                    # A thread's "parent" is its process's parent (real_parent), not the creating thread.
                    _ppid, _ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, body)
                    if cpid != ctgid:
                        with self.lock:
                            if ctgid in self.watched:
                                self.watched[ctgid]["threads"][cpid] = ts
                elif what == EV_EXEC:
                    pid, tgid = struct.unpack_from("=II", data, body)
                    with self.lock:
                        if tgid in self.watched and self.watched[tgid]["exec"] is None:
                            self.watched[tgid]["exec"] = ts
                elif what == EV_COMM:
                    pid, tgid = struct.unpack_from("=II", data, body)
                    comm = data[body + 8:body + 24].split(b"\0", 1)[0].decode("utf-8", "replace")
                    with self.lock:
                        if tgid in self.watched:
                            self.watched[tgid]["names"].setdefault(pid, []).append((ts, comm))
                offset += max(length, NLMSG.size) + (-length % 4)

    def close(self):
        self.running = False
        try:
            self._control(PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        if self.thread:
            self.thread.join(timeout=2)
        self.sock.close()
