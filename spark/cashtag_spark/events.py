"""The job's cashtag events: `spark.batch` (a micro-batch's progress) and `spark.late`
(late records left out of a minute), appended to the suite's events stream in Redis
(`<prefix>:stream:events`, field `data`: the event's JSON, as `cashtag_core::Event`
serializes), the stream cashtag-log reads every service's events from.
Best effort: the roll-up never waits on Redis; an event that cannot be sent is printed.
"""

import datetime
import json
import os
import socket
import time


def redis_url_with_password(url, password):
    if not password or "@" in url.split("//", 1)[-1]:
        return url
    from urllib.parse import quote

    scheme, rest = url.split("//", 1)
    return f"{scheme}//:{quote(password, safe='')}@{rest}"


def password_from_env():
    path = os.environ.get("CASHTAG_REDIS_PASSWORD_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get("CASHTAG_REDIS_PASSWORD", "")


class Events:
    def __init__(self, url, prefix, maxlen=1_000_000):
        self.stream = f"{prefix}:stream:events"
        self.maxlen = maxlen
        self.instance = os.environ.get("CASHTAG_INSTANCE") or socket.gethostname()
        self.start = int(time.time() * 1000)
        self.seq = 0
        self.client = None
        if url:
            import redis

            self.client = redis.Redis.from_url(redis_url_with_password(url, password_from_env()), socket_timeout=2)

    def emit(self, kind, code, message, **fields):
        self.seq += 1
        event = {
            "id": f"{self.instance}:{self.start:x}:e{self.seq}",
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "service": "spark",
            "instance": self.instance,
            "kind": kind,
            "code": code,
            "message": message,
            "fields": fields,
        }
        data = json.dumps(event)
        if self.client is None:
            return
        try:
            self.client.xadd(self.stream, {"data": data}, maxlen=self.maxlen, approximate=True)
        except Exception as e:  # noqa: BLE001 - best effort, said on stdout
            print(json.dumps({"event_not_sent": code, "error": type(e).__name__}), flush=True)
