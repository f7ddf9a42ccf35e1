"""A hostile local client of httpqd, written independently of the Rust code from the wire
spec (docs/wire-protocol.md): the isolation tests run it as another user (setpriv) to do what
an attacker would, the daemon tests as an app that misbehaves (one that dies mid-request),
and it prints what happened as one JSON line.

    python3 wire.py SCENARIO SOCKET [ARGS...]
"""

import json
import os
import socket
import struct
import sys
import time

HELLO, HELLO_ACK, GOAWAY, PING, CONTROL = 0x01, 0x02, 0x03, 0x04, 0x10
REQUEST_HEAD, RESPONSE_HEAD, RESPONSE_BODY, RESET, CREDIT = 0x20, 0x30, 0x31, 0x40, 0x42
ACK = 0x02


def frame(ftype, payload=b"", flags=0, stream=0):
    return struct.pack("<BBHIQ", ftype, flags, 0, len(payload), stream) + payload


def hello(role, max_frame=65536):
    return frame(HELLO, b"HTTPQ" + struct.pack("<HHBIQ", 2, 2, role, max_frame, 0))


def control(op_id, obj):
    body = json.dumps(obj).encode()
    return frame(CONTROL, struct.pack("<II", op_id, len(body)) + body)


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read_frame(self, timeout=10):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 16:
                ftype, flags, _, length, stream = struct.unpack("<BBHIQ", self.buf[:16])
                if len(self.buf) >= 16 + length:
                    payload = self.buf[16 : 16 + length]
                    self.buf = self.buf[16 + length :]
                    return ftype, flags, stream, payload
            chunk = self.s.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk

    def goaway_reason(self, payload):
        # last_stream u64, code u32, reason str (u32 length + bytes)
        (code,) = struct.unpack("<I", payload[8:12])
        (n,) = struct.unpack("<I", payload[12:16])
        return code, payload[16 : 16 + n].decode("utf-8", "replace")

    def call(self, op_id, obj):
        self.send(control(op_id, obj))
        while True:
            f = self.read_frame()
            if f is None:
                return {"closed": True}
            ftype, flags, _, payload = f
            if ftype == GOAWAY:
                return {"goaway": self.goaway_reason(payload)[1]}
            if ftype == CONTROL and flags & ACK:
                (got,) = struct.unpack("<I", payload[:4])
                if got == op_id:
                    return json.loads(payload[8:])


def app(path, max_frame=65536):
    c = Conn(path)
    c.send(hello(1, max_frame))
    f = c.read_frame()
    assert f and f[0] == HELLO_ACK, f
    return c


def serving_app(path, port, prefix, max_frame=65536):
    """An app connection with a queue serving http://localhost:PORT/PREFIX/ and 16 request
    credits. Prints the ready line."""
    c = app(path, max_frame=max_frame)
    q = c.call(1, {"op": "create_queue"})["result"]["queue"]
    r = c.call(2, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/{prefix}/"})
    assert r.get("status") == "ok", r
    c.send(frame(CREDIT, struct.pack("<I", 16)))
    print(json.dumps({"ready": True}), flush=True)
    return c


def scenario_flood_unread(path, limit_mb):
    """Sends small invalid control requests forever and never reads the answers."""
    c = app(path)
    junk = control(1, {"op": "no_such_operation"})
    batch = junk * 512
    sent = 0
    closed = False
    start = time.time()
    try:
        while sent < int(limit_mb) << 20 and time.time() - start < 120:
            c.send(batch)
            sent += len(batch)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    return {"sent": sent, "closed_by_listener": closed}


def scenario_create_close(path, port, n):
    """Creates a queue, registers a prefix and closes the queue, n times."""
    c = app(path)
    errors = []
    for i in range(int(n)):
        r = c.call(3 * i + 1, {"op": "create_queue"})
        if r.get("status") != "ok":
            errors.append(r)
            break
        q = r["result"]["queue"]
        r = c.call(3 * i + 2, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/c/"})
        if r.get("status") != "ok":
            errors.append(r)
            break
        r = c.call(3 * i + 3, {"op": "close_queue", "queue": q})
        if r.get("status") != "ok":
            errors.append(r)
            break
    return {"errors": errors}


def scenario_churn(path, port, n):
    """On one connection, n times: create a queue, add a 1.5 KB prefix, close the queue; then
    n times add a prefix and remove it spelled in other case. Everything it added is gone
    again; it holds the connection until stdin closes so the listener's view of it can be
    read."""
    c = app(path)
    op = 0
    long = "x" * 1500
    errors = []
    for i in range(int(n)):
        op += 1
        q = c.call(op, {"op": "create_queue"})["result"]["queue"]
        op += 1
        r = c.call(op, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/{long}/{i}/"})
        op += 1
        c.call(op, {"op": "close_queue", "queue": q})
        if r.get("status") != "ok":
            errors.append(r)
    op += 1
    q = c.call(op, {"op": "create_queue"})["result"]["queue"]
    for i in range(int(n)):
        op += 1
        r1 = c.call(op, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/{long}/case{i}/"})
        op += 1
        r2 = c.call(op, {"op": "remove_url", "queue": q, "prefix": f"http://LOCALHOST:{port}/{long.upper()}/CASE{i}/"})
        for r in (r1, r2):
            if r.get("status") != "ok":
                errors.append(r)
    print(json.dumps({"errors": errors[:3]}), flush=True)
    sys.stdin.read()
    return None


def scenario_queue_names(path, *names):
    """Asks for named queues with the given names (hex-encoded UTF-8)."""
    c = app(path)
    out = []
    for i, name in enumerate(names):
        r = c.call(i + 1, {"op": "create_queue", "name": bytes.fromhex(name).decode()})
        out.append(r)
    return {"answers": out}


def scenario_admin_hello(path):
    """Says HELLO as an admin; reports the first frame the listener sends back."""
    c = Conn(path)
    c.send(hello(2))
    f = c.read_frame()
    if f is None:
        return {"first": None}
    if f[0] == GOAWAY:
        return {"first": "GOAWAY", "reason": c.goaway_reason(f[3])[1]}
    return {"first": "HELLO_ACK" if f[0] == HELLO_ACK else f[0]}


def scenario_connections(path, n):
    """Opens n control connections and says nothing on them; reports how many the listener
    refused at once (GOAWAY) and how many it kept, then holds them until stdin closes."""
    conns = [Conn(path) for _ in range(int(n))]
    time.sleep(1)
    refused, open_, reason = 0, 0, None
    for c in conns:
        c.s.setblocking(False)
        try:
            data = c.s.recv(65536)
        except BlockingIOError:
            open_ += 1
            continue
        c.buf += data
        f = c.read_frame(timeout=1)
        if f is not None and f[0] == GOAWAY:
            refused += 1
            reason = c.goaway_reason(f[3])[1]
    print(json.dumps({"open": open_, "refused": refused, "reason": reason}), flush=True)
    sys.stdin.read()
    return None


def scenario_hold_admin(path):
    """Connects, then hands the connection to a child and exits, so that the pid the kernel
    recorded for the connection is free for another process. On a line from stdin the child
    says HELLO as an admin and runs `show urlacl`; it reports what the listener answered."""
    c = Conn(path)
    if os.fork() != 0:
        print(json.dumps({"connector": os.getpid()}), flush=True)
        os._exit(0)
    sys.stdin.readline()
    c.send(hello(2))
    f = c.read_frame(timeout=30)
    if f is None:
        print(json.dumps({"first": None}), flush=True)
    elif f[0] == GOAWAY:
        print(json.dumps({"first": "GOAWAY", "reason": c.goaway_reason(f[3])[1]}), flush=True)
    else:
        r = c.call(1, {"op": "admin", "command": "show urlacl", "args": {}})
        print(json.dumps({"first": "HELLO_ACK", "answer": r}), flush=True)
    return None


def scenario_tcp_idle(host, port, n):
    """Opens n TCP connections to HOST:PORT and sends nothing; holds them until stdin
    closes. (The first argument is an address here, not a control socket.)"""
    conns = []
    for _ in range(int(n)):
        s = socket.create_connection((host, int(port)))
        conns.append(s)
    print(json.dumps({"open": len(conns)}), flush=True)
    sys.stdin.read()
    return None


def scenario_silent(path):
    """Connects and sends nothing: reports when and how the listener ends the connection."""
    c = Conn(path)
    start = time.time()
    f = c.read_frame(timeout=60)
    reason = c.goaway_reason(f[3])[1] if f and f[0] == GOAWAY else None
    eof = c.read_frame(timeout=5) is None
    return {"after_secs": round(time.time() - start, 1), "reason": reason, "closed": eof}


def scenario_many_queues(path, port, n, path_len):
    """Creates n anonymous queues, each with a long prefix; holds them until stdin closes."""
    c = app(path)
    for i in range(int(n)):
        r = c.call(2 * i + 1, {"op": "create_queue"})
        q = r["result"]["queue"]
        seg = "/".join([("q%d" % i)] + ["x" * 99] * (int(path_len) // 100))
        r = c.call(2 * i + 2, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/{seg}/"})
        assert r.get("status") == "ok", r
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    return None


def scenario_impostor(path, log):
    """Listens on PATH as whoever runs it, and records every byte any client sends."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)  # any victim may connect, as to the real listener
    s.listen(16)
    print(json.dumps({"listening": path}), flush=True)
    with open(log, "ab", buffering=0) as out:
        while True:
            conn, _ = s.accept()
            conn.settimeout(2)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    out.write(data)
            except OSError:
                pass
            conn.close()


def scenario_rule_breaker(path, port):
    """An app that registers http://localhost:PORT/m/ and answers each request breaking one
    stream rule of the wire spec (section 6 and 8), chosen by the request's last path segment:
    body-first (RESPONSE_BODY before RESPONSE_HEAD), two-heads (a second final head),
    over-window (more response body than the listener's window). Prints a ready line, then,
    after three RESETs from the listener (or 60 s), what each request's RESET said."""
    # Frames up to 256 KiB, so one RESPONSE_BODY can pass the 64 KiB window by itself.
    c = serving_app(path, port, "m", max_frame=262144)
    # status 200, no headers, no cache policy, no body length
    head = struct.pack("<HH", 200, 0) + b"\x00\x00"
    targets, resets = {}, {}
    deadline = time.time() + 60
    while len(resets) < 3 and time.time() < deadline:
        f = c.read_frame(timeout=max(1, deadline - time.time()))
        if f is None:
            break
        ftype, _, stream, payload = f
        if ftype == REQUEST_HEAD:
            # queue u64, url_context u64, method str, raw_target bytes, ...
            (n,) = struct.unpack("<I", payload[16:20])
            off = 20 + n
            (n,) = struct.unpack("<I", payload[off : off + 4])
            target = payload[off + 4 : off + 4 + n].decode()
            rule = target.rsplit("/", 1)[-1]
            targets[stream] = rule
            if rule == "body-first":
                c.send(frame(RESPONSE_BODY, b"x", 0, stream))
            elif rule == "two-heads":
                c.send(frame(RESPONSE_HEAD, head, 0, stream) + frame(RESPONSE_HEAD, head, 0, stream))
            elif rule == "over-window":
                c.send(frame(RESPONSE_HEAD, head, 0, stream) + frame(RESPONSE_BODY, b"x" * 70000, 0, stream))
        elif ftype == RESET:
            (code, n) = struct.unpack("<II", payload[:8])
            resets[targets.get(stream, str(stream))] = {
                "code": code,
                "reason": payload[8 : 8 + n].decode("utf-8", "replace"),
            }
    return {"resets": resets}


def scenario_header_bomb(path, port):
    """An app that registers http://localhost:PORT/b/ and answers every request with a
    RESPONSE_HEAD of 33,000 header fields: the u16 count could say 65,535 and a 256 KiB frame
    holds them, but wire spec section 3 caps a list at 16,384 (an http::HeaderMap holds about
    24,000). Prints a ready line, then, when the listener closes the connection with a GOAWAY
    (or 30 s pass), what it said."""
    c = serving_app(path, port, "b", max_frame=262144)
    n = 33000
    # status, count, then n x (u16 name length, "x", u32 value length 0); no cache, no length
    head = struct.pack("<HH", 200, n) + (struct.pack("<H", 1) + b"x" + struct.pack("<I", 0)) * n
    head += b"\x00\x00"
    last, answered = None, 0
    deadline = time.time() + 30
    while time.time() < deadline:
        f = c.read_frame(timeout=max(1, deadline - time.time()))
        if f is None:
            break
        ftype, _, stream, payload = f
        last = ftype
        if ftype == REQUEST_HEAD:
            c.send(frame(RESPONSE_HEAD, head, 0x01, stream))
            answered += 1
        elif ftype == GOAWAY:
            return {"answered": answered, "goaway": c.goaway_reason(payload)}
    return {"answered": answered, "last": last}


def scenario_vanisher(path, port):
    """An app process that attaches to the named queue "relay" serving http://localhost:PORT/v/,
    takes one request and dies without answering it (closes its connection). Prints a ready
    line, then whether it took one."""
    c = app(path)
    r = c.call(1, {"op": "create_queue", "name": "relay", "mode": "create_or_attach"})
    assert r.get("status") == "ok", r
    q = r["result"]["queue"]
    r = c.call(2, {"op": "add_url", "queue": q, "prefix": f"http://localhost:{port}/v/"})
    assert r.get("status") == "ok", r
    c.send(frame(CREDIT, struct.pack("<I", 16)))
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        f = c.read_frame(timeout=max(1, deadline - time.time()))
        if f is None:
            break
        if f[0] == REQUEST_HEAD:
            c.s.close()
            return {"vanished": True}
    return {"vanished": False}


def main():
    name, path, *args = sys.argv[1:]
    result = globals()["scenario_" + name.replace("-", "_")](path, *args)
    if result is not None:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
