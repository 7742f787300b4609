"""A simulated market day through the whole local suite, measured (run by scripts/bench-day).

Starts manager, log, stocks, twitter, analysis (`run`) and the predictor as release
binaries against the local stack, on a simulated clock (`--speed`, default 10x) from
`--lead` minutes before a full NYSE session to `--tail` minutes after its close, with
MongoDB and Kinesis both on. Meanwhile it samples every process (the six services and the
three servers): CPU time, resident memory, and the fetchers' /healthz (records accepted,
journal, each sink's backlog). At the end it reads what the stores hold and says:

- whether the stack kept up: every ticker has trades in every minute from the open to the
  close, the simulated market never ran late (trade `received_at` − `ts` at most two wall
  seconds), no journal was ever blocked, and by the end MongoDB and Kinesis hold every
  accepted record (and the bars built from them; Kinesis counted by distinct key, as it
  may hold re-sent copies); the sinks' backlog is sampled all along;
- where the time went: CPU seconds and share of the session per process;
- memory: each service's RSS idle (before the open) and loaded (peak of the session).

Usage: bench_day.py --bin-dir DIR --stack-env FILE --work DIR [--speed 10] [--lead 15]
       [--tail 10] [--date YYYY-MM-DD] [--report FILE]
"""
import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SERVICES = ["manager", "log", "stocks", "twitter", "analysis", "predict"]
FETCHERS = ["stocks", "twitter"]
SERVERS = ["redis", "mongo", "moto"]
TICK = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--stack-env", required=True)
    p.add_argument("--work", required=True, help="state, logs and samples go here")
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--lead", type=int, default=15, help="simulated minutes before the open")
    p.add_argument("--tail", type=int, default=10, help="simulated minutes after the close")
    p.add_argument("--date", help="the session (a full trading day); default: the next one")
    p.add_argument("--report", help="write the report as JSON here")
    return p.parse_args()


def log(msg):
    print(f"bench-day: {msg}", file=sys.stderr, flush=True)


def read_env(path):
    env = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def session(bin_dir, env, date):
    """The first full-length session on or after `date` (or after now)."""
    now = dt.datetime.now(dt.timezone.utc)
    first = date or now.date().isoformat()
    last = (dt.date.fromisoformat(first) + dt.timedelta(days=21)).isoformat()
    cal = subprocess.run(
        [f"{bin_dir}/cashtag-manager", "calendar", "--from", first, "--to", last, "--json"],
        env=env, capture_output=True, text=True,
    )
    if cal.returncode != 0:
        sys.exit(f"bench-day: cashtag-manager calendar failed: {cal.stderr.strip()}")
    out = cal.stdout
    for s in json.loads(out):
        o = parse_iso(s["open"])
        if s.get("early_close") or (date is None and o < now + dt.timedelta(hours=1)):
            continue
        return o, parse_iso(s["close"])
    sys.exit(f"bench-day: no full session between {first} and {last}")


class Clock:
    def __init__(self, start, speed, anchor):
        self.start, self.speed, self.anchor = start, speed, anchor

    def spec(self):
        return f"{iso(self.start)}@{self.speed:g}@{iso(self.anchor)}"

    def sim(self, wall=None):
        wall = wall or dt.datetime.now(dt.timezone.utc)
        return self.start + (wall - self.anchor) * self.speed

    def wall_seconds_until(self, sim):
        return (sim - self.sim()).total_seconds() / self.speed


def proc_sample(pid):
    """(cpu seconds, RSS KiB, peak RSS KiB) of a process, or None once it has gone."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    kib = {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in status.splitlines() if l.startswith("Vm"))}
    return cpu, kib.get("VmRSS", 0), kib.get("VmHWM", 0)


def tree_sample(pid):
    """A process and its children (moto and SecantusDB may fork workers)."""
    total = [0.0, 0, 0]
    pids = [pid]
    try:
        pids += [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        pass
    seen = False
    for p in pids:
        s = proc_sample(p)
        if s:
            seen = True
            total = [total[0] + s[0], total[1] + s[1], total[2] + s[2]]
    return tuple(total) if seen else None


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except Exception as e:  # noqa: BLE001 - a 503 still has a body
        body = getattr(e, "read", None)
        if body:
            try:
                return json.loads(body())
            except Exception:  # noqa: BLE001
                return None
        return None


def start_services(args, env, clock):
    procs = {}
    ports = {}
    os.makedirs(f"{args.work}/logs", exist_ok=True)
    for svc in SERVICES:
        ports[svc] = free_port()
        e = dict(env)
        e.update({
            "CASHTAG_CLOCK_SPEC": clock.spec(),
            "CASHTAG_SINKS_SPOOL_DIR": f"{args.work}/state/{svc}",
            "CASHTAG_HTTP_LISTEN": f"127.0.0.1:{ports[svc]}",
            "CASHTAG_LOG_FILES_DIR": f"{args.work}/logs/files",
        })
        cmd = [f"{args.bin_dir}/cashtag-analysis", "predict"] if svc == "predict" else [f"{args.bin_dir}/cashtag-{svc}", "run"]
        out = open(f"{args.work}/logs/{svc}.log", "w")
        procs[svc] = subprocess.Popen(cmd, env=e, stdout=out, stderr=subprocess.STDOUT)
    return procs, ports


def server_pids(stack_dir):
    pids = {}
    for name in SERVERS:
        try:
            pids[name] = int(open(f"{stack_dir}/pids/{name}.pid").read())
        except OSError:
            pass
    return pids


def run_day(args, env, clock, open_, close, stack_dir):
    procs, ports = start_services(args, env, clock)
    watched = {**{s: p.pid for s, p in procs.items()}, **server_pids(stack_dir)}
    end = close + dt.timedelta(minutes=args.tail)
    samples = []
    idle = {}
    first = {}
    log(f"services started; the market opens at {iso(open_)} (simulated), in "
        f"{clock.wall_seconds_until(open_):.0f} s; the run ends in {clock.wall_seconds_until(end):.0f} s")
    last_note = 0.0
    try:
        while clock.sim() < end:
            time.sleep(2)
            for s, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{s} exited with {p.returncode}; see {args.work}/logs/{s}.log")
            now_sim = clock.sim()
            row = {"wall": time.time(), "sim": iso(now_sim), "procs": {}, "fetchers": {}}
            for name, pid in watched.items():
                s = tree_sample(pid)
                if s:
                    row["procs"][name] = {"cpu": s[0], "rss_kib": s[1], "hwm_kib": s[2]}
            for f in FETCHERS:
                h = healthz(ports[f])
                info = (h or {}).get("details") or {}
                if info:
                    row["fetchers"][f] = {
                        "records": info.get("records"),
                        "blocked": (info.get("journal") or {}).get("blocked"),
                        "journal_bytes": (info.get("journal") or {}).get("bytes"),
                        "backlog": {k["sink"]: k.get("backlog_bytes", 0) for k in info.get("sinks") or []},
                        "written": {k["sink"]: k.get("written", 0) for k in info.get("sinks") or []},
                        "market_on": info.get("market_on"),
                    }
            samples.append(row)
            if not first:
                first = row
            if now_sim < open_ - dt.timedelta(minutes=2):
                idle = row
            if time.time() - last_note > 60:
                last_note = time.time()
                recs = {f: (row["fetchers"].get(f) or {}).get("records") for f in FETCHERS}
                backlog = {f: (row["fetchers"].get(f) or {}).get("backlog") for f in FETCHERS}
                log(f"simulated {now_sim.strftime('%H:%M')} UTC: records {recs}, sink backlog bytes {backlog}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for s, p in procs.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                log(f"{s} did not stop within 30 s of SIGTERM")
    with open(f"{args.work}/samples.jsonl", "w") as f:
        for row in samples:
            f.write(json.dumps(row) + "\n")
    return samples, idle, first, {s: p.returncode for s, p in procs.items()}


def stores(env, open_, close):
    """What MongoDB and Kinesis hold of the session."""
    import boto3
    from pymongo import MongoClient

    db = MongoClient(env["CASHTAG_MONGO_URI"])[env.get("CASHTAG_MONGO_DATABASE", "cashtag")]
    out = {"collections": {c: db[c].estimated_document_count() for c in ["trades", "quotes", "bars", "posts"]}}
    minutes = int((close - open_).total_seconds() // 60)
    per_ticker = {}
    lags = []
    for t in db["trades"].find({}, {"ticker": 1, "ts": 1, "received_at": 1, "_id": 0}):
        ts = t["ts"].replace(tzinfo=dt.timezone.utc)
        m = int((ts - open_).total_seconds() // 60)
        if 0 <= m < minutes:
            per_ticker.setdefault(t["ticker"], set()).add(m)
        lags.append((t["received_at"] - t["ts"]).total_seconds())
    lags.sort()
    out["trade_minutes"] = minutes
    out["tickers"] = len(per_ticker)
    out["tickers_missing_minutes"] = {
        k: minutes - len(v) for k, v in sorted(per_ticker.items()) if len(v) < minutes
    }
    out["last_trade_minute"] = {
        k: (open_ + dt.timedelta(minutes=max(v))).strftime("%H:%M") for k, v in sorted(per_ticker.items())
    }
    if lags:
        out["market_lag_sim_secs"] = {
            "p50": lags[len(lags) // 2], "p99": lags[int(len(lags) * 0.99)], "max": lags[-1]
        }
    from botocore.config import Config

    # moto reads a shard from its start on every GetRecords: slow on a day's records, and
    # a retried call would run beside the first.
    kinesis = boto3.client(
        "kinesis", endpoint_url=env["CASHTAG_AWS_ENDPOINT"], region_name=env.get("CASHTAG_AWS_REGION", "us-east-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"), aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(read_timeout=900, retries={"max_attempts": 1}),
    )
    for stream in ["cashtag-market", "cashtag-posts"]:
        try:
            out[f"kinesis_{stream}"] = read_stream(kinesis, stream)
        except Exception as e:  # noqa: BLE001 - the rest of the report still counts
            out[f"kinesis_{stream}"] = {"error": str(e)[:200]}
    return out


def read_stream(kinesis, stream):
    """Records in a stream, and how many distinct (type, key) among them."""
    total, keys = 0, set()
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            r = kinesis.get_records(ShardIterator=it, Limit=10000)
            for rec in r["Records"]:
                total += 1
                d = json.loads(rec["Data"])
                keys.add((d.get("type"), d.get("provider") or d.get("source"), d.get("ticker"),
                          d.get("ts") or d.get("start") or d.get("id"), d.get("seq")))
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                break
            it = r.get("NextShardIterator")
    return {"records": total, "distinct": len(keys)}


def report(samples, idle, first, open_, close, exits, stored, speed):
    in_session = [r for r in samples if iso(open_) <= r["sim"] < iso(close)]
    if not in_session:
        sys.exit("bench-day: no sample inside the session")
    a, b = in_session[0], in_session[-1]
    wall = b["wall"] - a["wall"]
    procs = {}
    for name in b["procs"]:
        if name in a["procs"]:
            cpu = b["procs"][name]["cpu"] - a["procs"][name]["cpu"]
            procs[name] = {
                "cpu_secs": round(cpu, 1),
                "cpu_share": round(cpu / wall, 3),
                "rss_idle_mib": round(idle.get("procs", {}).get(name, {}).get("rss_kib", 0) / 1024, 1),
                "rss_loaded_mib": round(max(r["procs"].get(name, {}).get("rss_kib", 0) for r in in_session) / 1024, 1),
                "rss_peak_mib": round(samples[-1]["procs"].get(name, {}).get("hwm_kib", 0) / 1024, 1),
            }
    blocked = {f: sum(1 for r in samples if (r["fetchers"].get(f) or {}).get("blocked")) for f in FETCHERS}
    backlog = {}
    for f in FETCHERS:
        peaks = {}
        for r in in_session:
            for sink, v in ((r["fetchers"].get(f) or {}).get("backlog") or {}).items():
                peaks[sink] = max(peaks.get(sink, 0), v or 0)
        last = (samples[-1]["fetchers"].get(f) or {}).get("backlog") or {}
        backlog[f] = {"peak_bytes": peaks, "at_end_bytes": last}
    records = {f: (samples[-1]["fetchers"].get(f) or {}).get("records") for f in FETCHERS}
    written = {f: (samples[-1]["fetchers"].get(f) or {}).get("written") for f in FETCHERS}
    # Every accepted record is in both stores once the run is over (the heartbeats'
    # backlog lags by a few seconds, so the stores are counted instead).
    c = stored["collections"]
    market = c["trades"] + c["quotes"] + c["bars"]
    complete = {
        "mongo_market": c["trades"] + c["quotes"] == records.get("stocks"),
        "mongo_posts": c["posts"] == records.get("twitter"),
        "kinesis_market": stored.get("kinesis_cashtag-market", {}).get("distinct") == market,
        "kinesis_posts": stored.get("kinesis_cashtag-posts", {}).get("distinct") == c["posts"],
    }
    kept_up = (
        not stored["tickers_missing_minutes"]
        and stored["tickers"] > 0
        and all(v == 0 for v in blocked.values())
        and stored.get("market_lag_sim_secs", {}).get("max", 1e9) <= 2 * speed
        and all(complete.values())
    )
    return {
        "session": {"open": iso(open_), "close": iso(close), "speed": speed, "wall_secs": round(wall)},
        "kept_up": kept_up,
        "stores_complete": complete,
        "records_accepted": records,
        "sinks_written": written,
        "stores": stored,
        "journal_blocked_samples": blocked,
        "sink_backlog": backlog,
        "processes": procs,
        "exit_codes": exits,
    }


def print_report(r):
    s = r["session"]
    print(f"\nsimulated session {s['open']} – {s['close']} at {s['speed']:g}x ({s['wall_secs']} s of wall time)")
    st = r["stores"]
    print(f"records accepted: {r['records_accepted']}")
    print(f"MongoDB: {st['collections']}")
    for k in ["kinesis_cashtag-market", "kinesis_cashtag-posts"]:
        if "error" in st.get(k, {}):
            print(f"Kinesis {k[8:]}: could not be read back: {st[k]['error']}")
        elif k in st:
            print(f"Kinesis {k[8:]}: {st[k]['records']} records, {st[k]['distinct']} distinct")
    for f, w in r["sinks_written"].items():
        print(f"{f}: written by its sinks {w}")
    print(f"tickers with trades: {st['tickers']}; minutes of the session without a trade: "
          f"{st['tickers_missing_minutes'] or 'none'}")
    last = sorted(set(st["last_trade_minute"].values()))
    print(f"last minute with trades (UTC): {', '.join(last)}")
    lag = st.get("market_lag_sim_secs")
    if lag:
        print(f"simulated market lateness (received_at − ts, simulated s): p50 {lag['p50']:.2f}, "
              f"p99 {lag['p99']:.2f}, max {lag['max']:.2f}")
    print(f"journal blocked (samples): {r['journal_blocked_samples']}")
    print(f"every accepted record in the stores: {r['stores_complete']}")
    for f, b in r["sink_backlog"].items():
        print(f"{f} sink backlog: peak {b['peak_bytes']} bytes, at the end {b['at_end_bytes']}")
    print(f"\n{'process':<10} {'CPU s':>8} {'CPU share':>10} {'RSS idle MiB':>13} {'RSS loaded MiB':>15} {'peak MiB':>9}")
    for name, p in sorted(r["processes"].items(), key=lambda kv: -kv[1]["cpu_secs"]):
        print(f"{name:<10} {p['cpu_secs']:>8.1f} {p['cpu_share'] * 100:>9.1f}% {p['rss_idle_mib']:>13.1f} "
              f"{p['rss_loaded_mib']:>15.1f} {p['rss_peak_mib']:>9.1f}")
    print(f"\nkept up: {'yes' if r['kept_up'] else 'NO'}")


def main():
    args = parse_args()
    # SIGTERM (or Ctrl-C) still stops the services, through the `finally` of the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The services refuse CASHTAG_* variables they do not know: the bench's own stay here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHTAG_BENCH_")}
    env.update(read_env(args.stack_env))
    env.setdefault("RUST_LOG", "info")
    stack_dir = env["CASHTAG_STACK_DIR"]
    open_, close = session(args.bin_dir, env, args.date)
    start = open_ - dt.timedelta(minutes=args.lead)
    clock = Clock(start, args.speed, dt.datetime.now(dt.timezone.utc))
    log(f"session {iso(open_)} – {iso(close)}; clock {clock.spec()}")
    samples, idle, first, exits = run_day(args, env, clock, open_, close, stack_dir)
    log("reading the stores")
    stored = stores(env, open_, close)
    r = report(samples, idle, first, open_, close, exits, stored, args.speed)
    print_report(r)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(r, f, indent=2)
    sys.exit(0 if r["kept_up"] else 1)


if __name__ == "__main__":
    main()
