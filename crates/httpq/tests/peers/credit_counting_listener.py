"""A listener that counts the request credits an app grants, written from
docs/wire-protocol.md §8 (not from our Rust code; frames from fake_listener.py). It serves
one app connection at SOCKET: answers HELLO, create_queue and add_url as httpqd would, then,
after the app's first CREDIT
on stream 0 (its max_accepts):

1. sends 8 REQUEST_HEADs (streams 1-8, GET /, no body) in one write, and waits until all 8
   are answered and credited again;
2. sends a 9th REQUEST_HEAD split in two writes 300 ms apart, and waits for its answer.

It prints one JSON line: the stream-0 CREDIT increments that came after the first, before
the 9th head (`batch`) and after it (`split`), and how many RESPONSE_HEADs came back.

With `overrun` as third argument it instead sends, after the first CREDIT, one REQUEST_HEAD
more than that CREDIT granted, in one write (the first for GET /count/1000, a 10-second
streamed answer of the axum example; the others GET /count/1), and reports the app's GOAWAY
(last_stream, code, reason), how many frames came after it, and whether the app closed the
connection.

    python3 credit_counting_listener.py SOCKET PORT [overrun]
"""

import json
import os
import struct
import sys
import time

from fake_listener import CREDIT, GOAWAY, RESPONSE_HEAD, Conn, goaway_of, listen, request_head


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    overrun = len(sys.argv) > 3 and sys.argv[3] == "overrun"
    s = listen(path)
    c = Conn(s)
    first_credit, batch, split, answers = None, [], [], 0
    goaway, after_goaway = None, 0
    phase = "handshake"
    for ftype, _, stream, payload in c.frames(20):
        if goaway is not None:
            after_goaway += 1
        if ftype == CREDIT and stream == 0:
            (increment,) = struct.unpack("<I", payload[:4])
            if first_credit is None:
                first_credit = increment
                phase = "batch"
                # One write of under 2 KB on a Unix socket: the app reads it in one read (it
                # reads up to 16 KiB), so all these heads share the credit count of that read.
                if overrun:
                    heads = [request_head(1, port, "/count/1000")]
                    heads += [request_head(i, port, "/count/1") for i in range(2, increment + 2)]
                else:
                    heads = [request_head(i, port, "/") for i in range(1, 9)]
                s.sendall(b"".join(heads))
            elif phase == "batch":
                batch.append(increment)
            else:
                split.append(increment)
        elif ftype == GOAWAY:
            goaway = goaway_of(payload)
        elif ftype == RESPONSE_HEAD:
            answers += 1
            if answers == 9:
                c.deadline = time.time() + 0.3
        if not overrun and phase == "batch" and answers == 8 and sum(batch) >= 8:
            # The batch is answered and credited: the 9th head goes out in two writes.
            phase = "split"
            head = request_head(9, port, "/")
            s.sendall(head[:40])
            time.sleep(0.3)
            s.sendall(head[40:])
    report = {"first": first_credit, "batch": batch, "split": split, "answers": answers}
    report.update({"goaway": goaway, "after_goaway": after_goaway, "closed": c.closed})
    print(json.dumps(report), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
