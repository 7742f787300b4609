"""`cashtag-kinesis`: a Structured Streaming source for Amazon Kinesis on Spark 4's Python
Data Source API, for where Spark's own connectors are not at hand (they are on Maven only;
on EMR use its `aws-kinesis` connector instead — the job takes either).

Offsets are per-shard sequence numbers: ``{"shards": {SHARD_ID: {"after": SEQ | null,
"done": bool}}}`` — "after" is the last sequence number handed to Spark (null: nothing
yet, read from the shard's start), "done" that a closed shard was read to its end. A
batch is re-read exactly from its start offset to its end offset after a restart from a
checkpoint (`readBetweenOffsets`), so no record is skipped or read twice. Resharding is
followed: a child shard is read only once every parent it has is done, so records of one
partition key stay in order. GetRecords' throughput limit
(`ProvisionedThroughputExceededException`) is met with exponential back-off.

The reads happen in Spark's driver (`SimpleDataSourceStreamReader`); the aggregation
after it runs on the executors.
"""

import datetime
import time

from pyspark.sql.datasource import DataSource, SimpleDataSourceStreamReader

SCHEMA = "stream string, shard string, sequence string, arrival timestamp, partition_key string, data binary"


def client(options):
    import boto3

    return boto3.client(
        "kinesis",
        region_name=options.get("region", "us-east-1"),
        endpoint_url=options.get("endpoint") or None,
    )


class Throttled(Exception):
    pass


def call(fn, what, backoff_max=5.0, attempts=12, **kwargs):
    """`fn(**kwargs)`, backing off exponentially while Kinesis throttles."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return fn(**kwargs)
        except Exception as e:  # botocore's error classes are generated per client
            code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
            if code not in ("ProvisionedThroughputExceededException", "LimitExceededException") or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, backoff_max)
    raise Throttled(what)


def list_shards(kinesis, stream):
    shards, token = [], None
    while True:
        r = call(kinesis.list_shards, "ListShards", **({"NextToken": token} if token else {"StreamName": stream}))
        shards.extend(r["Shards"])
        token = r.get("NextToken")
        if not token:
            return shards


def parents(shard):
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


class KinesisSource(DataSource):
    """Options: ``stream`` (required), ``endpoint``, ``region``, ``maxRecordsPerShard``
    (per batch, default 10000)."""

    @classmethod
    def name(cls):
        return "cashtag-kinesis"

    def schema(self):
        return SCHEMA

    def simpleStreamReader(self, schema):
        return KinesisReader(dict(self.options))


class KinesisReader(SimpleDataSourceStreamReader):
    def __init__(self, options):
        if not options.get("stream"):
            raise ValueError("cashtag-kinesis: the option 'stream' is required")
        self.options = options
        self.stream = options["stream"]
        self.max_records = int(options.get("maxRecordsPerShard", "10000"))
        self._kinesis = None

    @property
    def kinesis(self):
        if self._kinesis is None:
            self._kinesis = client(self.options)
        return self._kinesis

    def initialOffset(self):
        return {"shards": {s["ShardId"]: {"after": None, "done": False} for s in list_shards(self.kinesis, self.stream)}}

    def _iterator(self, shard, after):
        if after is None:
            kwargs = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        r = call(self.kinesis.get_shard_iterator, "GetShardIterator", StreamName=self.stream, ShardId=shard, **kwargs)
        return r["ShardIterator"]

    def _read_shard(self, shard, after, until=None, limit=None):
        """Records of `shard` after the sequence number `after` — up to `until`
        (inclusive) when given, else up to `limit` records or the shard's present end.
        Returns (rows, last sequence, closed and read to its end). Only GetRecords says a
        shard is read to its end (no next iterator): an ending sequence number alone is
        not trusted (moto, for one, keeps adding records to a resharded parent)."""
        it = self._iterator(shard, after)
        rows, last = [], after
        stop = int(until) if until is not None else None
        while it:
            r = call(self.kinesis.get_records, "GetRecords", ShardIterator=it, Limit=1000)
            for rec in r["Records"]:
                seq = rec["SequenceNumber"]
                if stop is not None and int(seq) > stop:
                    return rows, last, False
                arrival = rec.get("ApproximateArrivalTimestamp")
                if isinstance(arrival, datetime.datetime):
                    arrival = arrival.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                rows.append((self.stream, shard, seq, arrival, rec["PartitionKey"], bytes(rec["Data"])))
                last = seq
                if stop is not None and int(seq) == stop:
                    return rows, last, False
            it = r.get("NextShardIterator")
            if it is None:
                return rows, last, True  # a closed shard, read to its end
            if not r["Records"] and r.get("MillisBehindLatest", 0) == 0:
                return rows, last, False
            if limit is not None and len(rows) >= limit:
                return rows, last, False
        return rows, last, True

    def read(self, start):
        shards = list_shards(self.kinesis, self.stream)
        offsets = {k: dict(v) for k, v in start["shards"].items()}
        for s in shards:
            offsets.setdefault(s["ShardId"], {"after": None, "done": False})
        known = {s["ShardId"]: s for s in shards}
        rows = []
        # Parents first: a child is read once all its parents are done (a parent that
        # has expired from the stream counts as done).
        progress = True
        while progress:
            progress = False
            for shard in sorted(offsets):
                o = offsets[shard]
                if o["done"] or o.get("_read"):
                    continue
                ps = parents(known.get(shard, {}))
                if any(p in offsets and not offsets[p]["done"] for p in ps):
                    continue
                got, last, closed = self._read_shard(shard, o["after"], limit=self.max_records)
                rows.extend(got)
                o["after"], o["done"], o["_read"] = last, closed, True
                progress = progress or closed
        for o in offsets.values():
            o.pop("_read", None)
        return iter(rows), {"shards": offsets}

    def readBetweenOffsets(self, start, end):
        rows = []
        for shard in sorted(end["shards"]):
            e = end["shards"][shard]
            s = start["shards"].get(shard, {"after": None, "done": False})
            if s.get("done") or e["after"] is None or e["after"] == s["after"]:
                continue
            got, _, _ = self._read_shard(shard, s["after"], until=e["after"])
            rows.extend(got)
        return iter(rows)

    def commit(self, end):
        pass
