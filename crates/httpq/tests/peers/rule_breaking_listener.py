"""A listener that breaks the wire spec's stream rules, written from docs/wire-protocol.md
(not from our Rust code), for the app side's checks. It serves one app connection at SOCKET:
answers HELLO, create_queue and add_url as httpqd would, then, once the app grants request
credit, sends:

1. REQUEST_HEAD on stream 1 (GET /count/100, a slow streamed answer; a 10-byte body;
   EXPECT_CONTINUE) and at once REQUEST_BODY: a body before the app's first CREDIT, which
   the rules forbid when the client expects 100-continue;
2. after the app's RESET for it, REQUEST_HEAD on stream 1 again: a reused stream id.

It prints one JSON line: the RESETs the app sent (stream -> code, reason), the code of its
GOAWAY, and whether it closed the connection after the reused id.

    python3 rule_breaking_listener.py SOCKET PORT
"""

import json
import os
import struct
import sys

from fake_listener import (
    CREDIT, END_STREAM, GOAWAY, REQUEST_BODY, RESET, Conn, frame, goaway_of, listen,
    request_head,
)


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    s = listen(path)
    c = Conn(s)
    resets, sent_body, reused, goaway = {}, False, False, None
    for ftype, _, stream, payload in c.frames(30):
        if ftype == CREDIT and stream == 0 and not sent_body:
            sent_body = True
            s.sendall(
                request_head(1, port, "/count/100", 10, 1)
                + frame(REQUEST_BODY, b"0123456789", END_STREAM, 1)
            )
        elif ftype == GOAWAY:
            goaway = goaway_of(payload)["code"]
        elif ftype == RESET:
            code, n = struct.unpack("<II", payload[:8])
            resets[str(stream)] = {"code": code, "reason": payload[8 : 8 + n].decode("utf-8", "replace")}
            if not reused:
                reused = True
                s.sendall(request_head(1, port, "/count/1"))
    print(json.dumps({"resets": resets, "goaway": goaway, "closed": c.closed}), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
