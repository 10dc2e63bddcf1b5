#!/usr/bin/env python3
"""Mixed load against a running imgedge, with a report every INTERVAL seconds.

    benches/soak.py BASE_URL PID CORPUS_DIR [--seconds 600] [--interval 30] [--threads 8]

Each thread loops over a weighted mix: uploads, transforms of new variants (misses), repeats
of known variants (hits), conditional requests (304), deletes, logins (one in four with a
wrong password). Every INTERVAL it prints the server's RSS, open file descriptors, memory cache,
decode budget and database connections in use (from /metrics), requests done and answers by
status. At the end it
checks: RSS within CACHE_MEMORY_MB + the decode budget in use + 96 MB, no upward trend over
the last half; descriptors back near the baseline once the load stops; no 5xx but 503 (and 507).
Only the standard library: runs wherever python3 does.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("base")
parser.add_argument("pid", type=int)
parser.add_argument("corpus")
parser.add_argument("--seconds", type=int, default=600)
parser.add_argument("--interval", type=int, default=30)
parser.add_argument("--threads", type=int, default=8)
parser.add_argument("--cache-mb", type=int, default=256)
args = parser.parse_args()

MIX = [("upload", 6), ("miss", 30), ("hit", 40), ("not_modified", 12), ("delete", 3), ("login", 9)]
FILES = [os.path.join(args.corpus, f) for f in ("photo-2mp.jpg", "small-640.jpg", "alpha-1024.png")]
BLOBS = [open(f, "rb").read() for f in FILES]

statuses = collections.Counter()
done = [0]
lock = threading.Lock()


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(args.base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            data = res.read()
            status = res.status
    except urllib.error.HTTPError as e:
        data, status = e.read(), e.code
    except Exception:  # a refused or cut connection is counted apart
        data, status = b"", 0
    with lock:
        statuses[status] += 1
        done[0] += 1
    return status, data


def sign(key_hex, path):
    mac = hmac.new(bytes.fromhex(key_hex), path.encode(), hashlib.sha256).digest()
    return f"{path}?sig={base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


class Owner:
    def __init__(self, n):
        self.name, self.password = f"soak{n}_{os.getpid()}", "soak-password"
        body = json.dumps({"username": self.name, "password": self.password}).encode()
        _, data = call("POST", "/v1/auth/register", body)
        self.token = json.loads(data)["token"]
        _, data = call("GET", "/v1/me/signing-key", headers=self.auth())
        self.key = json.loads(data)["key"]
        self.images, self.urls = [], []

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def upload(self):
        status, data = call("POST", "/v1/images", random.choice(BLOBS), self.auth())
        if status == 201:
            self.images.append(json.loads(data)["id"])

    def step(self, action):
        if action == "upload" or not self.images:
            return self.upload()
        image = random.choice(self.images)
        if action == "miss":
            ops = f"w_{random.randint(40, 900)},fmt_{random.choice(['webp', 'jpeg', 'png'])}"
            url = sign(self.key, f"/i/{image}/{ops}")
            status, _ = call("GET", url)
            if status == 200:
                self.urls.append((image, url))
        elif action == "hit" and self.urls:
            call("GET", random.choice(self.urls)[1])
        elif action == "not_modified" and self.urls:
            _, url = random.choice(self.urls)
            req = urllib.request.Request(args.base + url, method="HEAD")
            try:
                etag = urllib.request.urlopen(req, timeout=60).headers.get("etag", "")
            except Exception:
                etag = ""
            call("GET", url, headers={"If-None-Match": etag})
        elif action == "delete" and len(self.images) > 2:
            image = self.images.pop(random.randrange(len(self.images)))
            self.urls = [u for u in self.urls if u[0] != image]
            call("DELETE", f"/v1/images/{image}", headers=self.auth())
        elif action == "login":
            password = self.password if random.random() > 0.25 else "wrong-password"
            call("POST", "/v1/auth/login", json.dumps({"username": self.name, "password": password}).encode())


def worker(n, stop):
    owner = Owner(n)
    actions = [a for a, w in MIX for _ in range(w)]
    while not stop.is_set():
        owner.step(random.choice(actions))


def rss_mb(field="VmRSS"):
    for line in open(f"/proc/{args.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def fds():
    return len(os.listdir(f"/proc/{args.pid}/fd"))


def gauge(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def metrics():
    try:
        return urllib.request.urlopen(args.base + "/metrics", timeout=10).read().decode()
    except Exception:
        return ""


baseline_fds = fds()
stop = threading.Event()
threads = [threading.Thread(target=worker, args=(n, stop), daemon=True) for n in range(args.threads)]
for t in threads:
    t.start()
print(f"{'t (s)':>6} {'RSS MB':>7} {'peak':>6} {'fds':>5} {'cache MB':>8} {'decode MB':>9} {'db use/open':>11} {'requests':>8}  answers")
samples = []
started = time.time()
while time.time() - started < args.seconds:
    time.sleep(args.interval)
    text = metrics()
    cache, decode = gauge(text, "imgedge_memory_cache_bytes") / 2**20, gauge(text, "imgedge_decode_memory_bytes") / 2**20
    db = f"{gauge(text, 'imgedge_db_connections_in_use'):.0f}/{gauge(text, 'imgedge_db_connections'):.0f}"
    sample = (round(time.time() - started), rss_mb(), rss_mb("VmHWM"), fds(), cache, decode, done[0])
    samples.append(sample)
    with lock:
        answers = " ".join(f"{s}:{n}" for s, n in sorted(statuses.items()))
    print(f"{sample[0]:>6} {sample[1]:>7.0f} {sample[2]:>6.0f} {sample[3]:>5} {cache:>8.0f} {decode:>9.0f} {db:>11} {sample[6]:>8}  {answers}", flush=True)
stop.set()
for t in threads:
    t.join(timeout=120)
time.sleep(10)
after_fds, after_rss = fds(), rss_mb()
budget = args.cache_mb + 96
peak = max(s[1] - s[5] for s in samples)
# Flat: the least-squares trend over the last half grows less than 10 % (or 16 MB) across it;
# single samples swing by tens of MB with the requests in flight.
half = samples[len(samples) // 2 :]
late = [s[1] for s in half]
ts = [s[0] for s in half]
t_mean, r_mean = sum(ts) / len(ts), sum(late) / len(late)
spread = sum((t - t_mean) ** 2 for t in ts)
slope = sum((t - t_mean) * (r - r_mean) for t, r in zip(ts, late)) / spread if spread else 0.0
trend = slope * (ts[-1] - ts[0])
flat = trend <= max(0.1 * r_mean, 16)
bad = {s: n for s, n in statuses.items() if s >= 500 and s not in (503, 507) or s == 0}
print(f"\nRSS (less the decode budget in use) peaked at {peak:.0f} MB; bound {budget} MB: {'ok' if peak <= budget else 'OVER'}")
print(f"RSS over the last half: {min(late):.0f}-{max(late):.0f} MB, trend {trend:+.0f} MB: {'flat' if flat else 'GROWING'}; 10 s after the load: {after_rss:.0f} MB")
print(f"descriptors: {baseline_fds} before, {after_fds} after the load: {'ok' if after_fds <= baseline_fds + 4 else 'LEAK'}")
print(f"unexpected answers: {bad or 'none'}")
raise SystemExit(0 if peak <= budget and flat and after_fds <= baseline_fds + 4 and not bad else 1)
