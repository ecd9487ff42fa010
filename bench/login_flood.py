#!/usr/bin/env python3
"""Login-flood client for bench/login_flood.sh (standard library only).

    login_flood.py PORT LABEL N FLOOD_PROCS

A legitimate user (alice, X-Forwarded-For 203.0.113.5) logs in N times one after
another, alone (FLOOD_PROCS = 0) or while FLOOD_PROCS processes (one connection each,
so the flood never shares this process' interpreter lock with the measurement) send
password attempts for distinct made-up usernames from 198.51.100.7 as fast as they
are answered. Prints one JSON line: the legitimate logins' latencies (p50/p99/max, ms)
and statuses, and the flood's statuses and rate.
"""
import http.client
import json
import sys
import multiprocessing
import time

port = int(sys.argv[1])
label = sys.argv[2]
n_legit = int(sys.argv[3])
flood_procs = int(sys.argv[4])


def post(conn, body, ip):
    conn.request(
        "POST",
        "/token",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": ip,
        },
    )
    r = conn.getresponse()
    r.read()
    return r.status


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def flood(w, stop, counts):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while not stop.is_set():
        i += 1
        try:
            s = post(conn, f"grant_type=password&username=flood-{w}-{i}&password=guess", "198.51.100.7")
        except Exception:
            s = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with counts.get_lock():
            counts[{400: 0, 429: 1, 503: 2}.get(s, 3)] += 1


if __name__ == "__main__":
    stop = multiprocessing.Event()
    counts = multiprocessing.Array("q", 4)
    procs = [multiprocessing.Process(target=flood, args=(w, stop, counts), daemon=True) for w in range(flood_procs)]
    t_flood = time.monotonic()
    for p in procs:
        p.start()
    if flood_procs:
        time.sleep(3)  # the flood reaches its steady state before measuring
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat, legit_status = [], {}
    for _ in range(n_legit):
        t0 = time.monotonic()
        s = post(conn, "grant_type=password&username=alice&password=wonderland", "203.0.113.5")
        lat.append((time.monotonic() - t0) * 1000)
        legit_status[s] = legit_status.get(s, 0) + 1
    stop.set()
    for p in procs:
        p.join(timeout=70)
    elapsed = time.monotonic() - t_flood
    flood_status = dict(zip(["400", "429", "503", "other"], counts[:]))
    print(json.dumps({
        "run": label,
        "legit_n": n_legit,
        "p50_ms": round(pct(lat, 50), 1),
        "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1),
        "legit_status": legit_status,
        "flood_status": flood_status if flood_procs else {},
        "flood_req_per_s": round(sum(counts[:]) / elapsed, 1) if flood_procs else 0,
    }))
