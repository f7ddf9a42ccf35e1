"""Opens N keep-alive connections to HOST:PORT, makes one request on each (HTTP/1.1, or
HTTP/2 with prior knowledge), reads its whole answer and leaves the connection open and idle.
Prints "ready N" when all are idle, then holds them until stdin closes.

    python3 idle_clients.py HOST PORT N [h1|h2]
"""

import resource
import select
import socket
import sys
import time


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    proto = sys.argv[4] if len(sys.argv) > 4 else "h1"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    if proto == "h2":
        import h2.config
        import h2.connection

    conns = []
    pending = {}
    for i in range(n):
        s = socket.create_connection((host, port))
        s.setblocking(False)
        if proto == "h2":
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            c.initiate_connection()
            c.send_headers(
                1,
                [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", f"{host}:{port}")],
                end_stream=True,
            )
            s.sendall(c.data_to_send())
            pending[s.fileno()] = (s, c)
        else:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            pending[s.fileno()] = (s, b"")
        conns.append(s)
        # Keep the accept backlog short: wait for answers every 256 connections.
        if len(pending) >= 256 or i == n - 1:
            drain(pending, proto)
    print(f"ready {len(conns)}", flush=True)
    # Hold until stdin closes.
    sys.stdin.read()
    for s in conns:
        s.close()


def drain(pending, proto):
    deadline = time.time() + 30
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    while pending and time.time() < deadline:
        for fd, _ in poller.poll(1000):
            if fd not in pending:
                continue
            s = pending[fd][0]
            data = s.recv(65536)
            sock, state = pending[fd]
            if not data:
                raise SystemExit(f"connection {fd} closed before its answer")
            if proto == "h2":
                import h2.events

                done = False
                for ev in state.receive_data(data):
                    if isinstance(ev, h2.events.StreamEnded):
                        done = True
                out = state.data_to_send()
                if out:
                    sock.sendall(out)
                if done:
                    del pending[fd]
                    poller.unregister(fd)
            else:
                state += data
                head, sep, body = state.partition(b"\r\n\r\n")
                if sep:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v)
                    if len(body) >= length:
                        del pending[fd]
                        poller.unregister(fd)
                        continue
                pending[fd] = (sock, state)
    if pending:
        raise SystemExit(f"{len(pending)} connections got no answer in 30 s")


if __name__ == "__main__":
    main()
