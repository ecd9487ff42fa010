"""Opens N connections to 127.0.0.1:PORT, makes each serve one request, leaves them
idle (`open`: connected, nothing sent), and prints how much resident memory process PID gained per connection (KiB).

    python3 idle_conns.py PORT N h1|h2|open PID

h1: `GET / HTTP/1.1` with keep-alive. h2: h2c with prior knowledge (the connection
preface, an empty SETTINGS, the server's SETTINGS acknowledged, one HEADERS request
for `GET /` ending the stream, read until the response ends).
"""
import socket
import struct
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HPACK, static table only: :method GET (2), :scheme http (6), :path / (4), then
# :authority (name 1) as a literal without indexing.
H2_REQUEST = b"\x82\x86\x84\x01\x09localhost"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def read_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def h1(s: socket.socket) -> None:
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
    while len(body) < length:
        body += s.recv(4096)


def h2(s: socket.socket) -> None:
    s.sendall(H2_PREFACE + frame(4, 0, 0) + frame(1, 0x05, 1, H2_REQUEST))
    while True:
        header = read_exact(s, 9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        read_exact(s, length)
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))
        if stream == 1 and kind in (0, 1) and flags & 1:
            return
        if kind == 7:
            raise ConnectionError("GOAWAY")


def rss_kib(pid: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


def main() -> None:
    port, n, mode, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    serve = {"h1": h1, "h2": h2, "open": lambda s: None}[mode]
    time.sleep(1)
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        serve(s)
        conns.append(s)
    time.sleep(1)
    after = rss_kib(pid)
    print(f"{(after - before) / n:.1f}")
    for s in conns:
        s.close()


main()
