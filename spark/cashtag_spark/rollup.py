"""The minute roll-ups of the design's Spark Streaming stage: the `cashtag-posts` and
`cashtag-market` Kinesis streams in, `sentiment_1m` and `price_1m` out — the same
documents (`_id` ``TICKER:YYYY-MM-DDTHH:MMZ``, fields and types) that cashtag-analysis's
embedded roll-up writes from MongoDB (`crates/analysis/src/rollup.rs`).

Event-time one-minute windows per ticker with a watermark; a record is counted once
(duplicates by its natural key within the watermark are dropped, as MongoDB's unique
`_id` does for the embedded roll-up); every micro-batch upserts the windows it changed by
`_id`, so a replayed batch changes nothing.

Records later than the watermark: Spark drops most of them (`numRowsDroppedByWatermark`),
but not all — in the first micro-batch after a restart, and in a batch that follows one
without data, its late-event filter still uses an older watermark, and a late record then
is added to its window — to the window's state when Spark still holds it, or to a fresh
state holding only the late record, which an upsert would write over the complete minute.
So the writer keeps its own watermark beside the checkpoint (the latest minute written,
minus the watermark delay): a window that ends at or before it is late and not written;
its late records (all it holds when its state was fresh, else what it holds beyond the
stored minute) are counted and logged, left to the embedded roll-up's trailing pass to
repair if wanted. A stored minute is never replaced by a late one.
"""

import datetime
import json
import os


from pyspark.sql import functions as F
from pyspark.sql import types as T

POST = T.StructType(
    [
        T.StructField("type", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("id", T.StringType()),
        T.StructField("created_at", T.StringType()),
        T.StructField("author", T.StructType([T.StructField("id", T.StringType())])),
        T.StructField("tickers", T.ArrayType(T.StringType())),
        T.StructField(
            "sentiment",
            T.StructType(
                [
                    T.StructField("vader", T.StructType([T.StructField("compound", T.DoubleType())])),
                    T.StructField(
                        "finance",
                        T.StructType([T.StructField("score", T.DoubleType()), T.StructField("label", T.StringType())]),
                    ),
                ]
            ),
        ),
    ]
)

TRADE = T.StructType(
    [
        T.StructField("type", T.StringType()),
        T.StructField("provider", T.StringType()),
        T.StructField("ticker", T.StringType()),
        T.StructField("ts", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("size", T.DoubleType()),
        T.StructField("seq", T.LongType()),
    ]
)


def source(spark, kind, stream, options):
    """The raw records of one stream, from the chosen connector, as (data binary,
    arrival timestamp)."""
    if kind == "cashtag-kinesis":
        reader = spark.readStream.format("cashtag-kinesis").option("stream", stream)
        for k, v in options.items():
            reader = reader.option(k, v)
        return reader.load().select("data", "arrival")
    if kind == "aws-kinesis":
        # EMR 7's connector: its columns are `data` and `approximateArrivalTimestamp`.
        reader = (
            spark.readStream.format("aws-kinesis")
            .option("kinesis.streamName", stream)
            .option("kinesis.consumerType", "GetRecords")
            .option("kinesis.startingposition", "TRIM_HORIZON")
        )
        if options.get("endpoint"):
            reader = reader.option("kinesis.endpointUrl", options["endpoint"])
        if options.get("region"):
            reader = reader.option("kinesis.region", options["region"])
        return reader.load().select(F.col("data"), F.col("approximateArrivalTimestamp").alias("arrival"))
    raise ValueError(f"unknown source {kind!r}: cashtag-kinesis or aws-kinesis")


def event_time(col):
    # RFC 3339 with a Z, milliseconds or not: Spark's parser reads both.
    return F.to_timestamp(col)


def minute_id(ticker, minute):
    return F.concat(ticker, F.lit(":"), F.date_format(minute, "yyyy-MM-dd'T'HH:mm'Z'"))


def sentiment_1m(raw, watermark):
    """Per ticker and minute: posts, distinct authors, VADER and finance sums and means,
    bullish / bearish / neutral counts."""
    posts = (
        raw.select(F.from_json(F.col("data").cast("string"), POST).alias("p"))
        .select("p.*")
        .where(F.col("type") == "post")
        .withColumn("event_time", event_time(F.col("created_at")))
        .where(F.col("event_time").isNotNull())
        .withColumn("key", F.concat_ws(":", "source", "id"))
        .withWatermark("event_time", watermark)
        .dropDuplicatesWithinWatermark(["key"])
        .select(
            "event_time",
            F.explode("tickers").alias("ticker"),
            F.coalesce(F.col("author.id"), F.lit("")).alias("author"),
            F.coalesce(F.col("sentiment.vader.compound"), F.lit(0.0)).alias("vader"),
            F.coalesce(F.col("sentiment.finance.score"), F.lit(0.0)).alias("finance"),
            F.coalesce(F.col("sentiment.finance.label"), F.lit("neutral")).alias("label"),
        )
    )
    return (
        posts.groupBy(F.window("event_time", "1 minute").alias("w"), "ticker")
        .agg(
            F.count(F.lit(1)).alias("posts"),
            F.collect_set("author").alias("author_set"),
            F.sum("vader").alias("vader_sum"),
            F.sum("finance").alias("finance_sum"),
            F.sum(F.when(F.col("label") == "bullish", 1).otherwise(0)).alias("bullish"),
            F.sum(F.when(F.col("label") == "bearish", 1).otherwise(0)).alias("bearish"),
        )
        .select(
            minute_id(F.col("ticker"), F.col("w.start")).alias("_id"),
            "ticker",
            F.col("w.start").alias("minute"),
            F.col("posts").cast("long").alias("posts"),
            F.size("author_set").cast("long").alias("authors"),
            "vader_sum",
            (F.col("vader_sum") / F.col("posts")).alias("vader_mean"),
            "finance_sum",
            (F.col("finance_sum") / F.col("posts")).alias("finance_mean"),
            F.col("bullish").cast("long").alias("bullish"),
            F.col("bearish").cast("long").alias("bearish"),
            (F.col("posts") - F.col("bullish") - F.col("bearish")).cast("long").alias("neutral"),
        )
    )


def price_1m(raw, watermark):
    """Per ticker and minute: the first and last trade by (time, sequence number), high,
    low, volume and the number of trades."""
    trades = (
        raw.select(F.from_json(F.col("data").cast("string"), TRADE).alias("t"))
        .select("t.*")
        .where(F.col("type") == "trade")
        .withColumn("event_time", event_time(F.col("ts")))
        .where(F.col("event_time").isNotNull() & F.col("price").isNotNull())
        .withColumn("key", F.concat_ws(":", "provider", "ticker", "ts", F.col("seq").cast("string")))
        .withWatermark("event_time", watermark)
        .dropDuplicatesWithinWatermark(["key"])
        .withColumn(
            "order",
            F.struct(
                F.unix_millis("event_time").alias("ms"),
                F.coalesce("seq", F.lit(0)).alias("seq"),
                F.col("price").alias("price"),
                F.coalesce("size", F.lit(0.0)).alias("size"),
            ),
        )
    )
    return (
        trades.groupBy(F.window("event_time", "1 minute").alias("w"), "ticker")
        .agg(
            F.min_by("price", "order").alias("open"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.max_by("price", "order").alias("close"),
            F.sum(F.coalesce("size", F.lit(0.0))).alias("volume"),
            F.count(F.lit(1)).alias("trades"),
        )
        .select(
            minute_id(F.col("ticker"), F.col("w.start")).alias("_id"),
            "ticker",
            F.col("w.start").alias("minute"),
            "open",
            "high",
            "low",
            "close",
            F.col("volume").cast("double").alias("volume"),
            F.col("trades").cast("long").alias("trades"),
        )
    )


def delay_seconds(watermark):
    """Seconds of a Spark interval like "2 minutes", "90 seconds", "1 hour"."""
    n, unit = watermark.split()
    scale = {"second": 1, "minute": 60, "hour": 3600}[unit.rstrip("s").lower()]
    return float(n) * scale


# Late records counted by the writers of this process, by collection.
LATE_ROWS = {}


def upsert(mongo_uri, database, collection, watermark, state_dir, count_field, on_late=None):
    """A `foreachBatch` function: replaces every window of the batch by `_id`, except the
    late ones (see the module's doc), whose records it counts and hands to
    `on_late(collection, minutes, rows)`."""
    delay = datetime.timedelta(seconds=delay_seconds(watermark))
    state = os.path.join(state_dir, "cashtag-writer-watermark.json")

    def write(batch, batch_id):
        from bson.int64 import Int64
        from pymongo import MongoClient, ReplaceOne

        rows = [r.asDict() for r in batch.collect()]
        LATE_ROWS.setdefault(collection, 0)
        if not rows:
            return
        mark = None
        if os.path.exists(state):
            with open(state) as f:
                mark = datetime.datetime.fromisoformat(json.load(f)["watermark"])
        keep, late = [], []
        for r in rows:
            # Spark hands timestamps as naive datetimes of the session time zone (UTC,
            # set by the job); MongoDB stores UTC. Counts are 64-bit, as Rust writes them.
            r["minute"] = r["minute"].replace(tzinfo=datetime.timezone.utc)
            behind = mark is not None and r["minute"] + datetime.timedelta(minutes=1) <= mark
            (late if behind else keep).append(r)
            for k, v in r.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    r[k] = Int64(v)
        with MongoClient(mongo_uri, tz_aware=True) as client:
            coll = client[database][collection]
            if late:
                # The late records of a window: what it holds beyond the stored minute (0
                # for a batch replayed after a crash), or all it holds when Spark started
                # its state afresh (fewer than stored) or nothing was stored.
                stored = {d["_id"]: d.get(count_field, 0) for d in coll.find({"_id": {"$in": [r["_id"] for r in late]}})}
                minutes, total = [], 0
                for r in late:
                    held, before = int(r[count_field]), stored.get(r["_id"])
                    n = held - int(before) if before is not None and held >= int(before) else held
                    if n == 0:
                        continue
                    LATE_ROWS[collection] += n
                    minutes.append(r["_id"])
                    total += n
                    print(json.dumps({"late_window": r["_id"], "collection": collection, "late_rows": n}), flush=True)
                if minutes and on_late is not None:
                    on_late(collection, minutes, total)
            if keep:
                coll.bulk_write([ReplaceOne({"_id": r["_id"]}, r, upsert=True) for r in keep], ordered=False)
        latest = max(r["minute"] for r in rows) + datetime.timedelta(minutes=1) - delay
        if mark is None or latest > mark:
            os.makedirs(state_dir, exist_ok=True)
            with open(state + ".tmp", "w") as f:
                json.dump({"watermark": latest.isoformat()}, f)
            os.replace(state + ".tmp", state)

    return write


RAW = T.StructType(
    [
        T.StructField("type", T.StringType()),
        T.StructField("ticker", T.StringType()),
        T.StructField("tickers", T.ArrayType(T.StringType())),
        T.StructField("created_at", T.StringType()),
        T.StructField("ts", T.StringType()),
        T.StructField("start", T.StringType()),
    ]
)


def raw(records):
    """The records as they came (JSON text), with their kind, partitioned by the New York
    date of their event and their ticker (a post: its first), for Athena, Spark or DuckDB."""
    r = records.select(
        F.col("data").cast("string").alias("json"), "arrival", F.from_json(F.col("data").cast("string"), RAW).alias("h")
    )
    at = event_time(F.coalesce("h.created_at", "h.ts", "h.start"))
    return r.select(
        F.col("h.type").alias("type"),
        "json",
        "arrival",
        at.alias("event_time"),
        F.date_format(F.from_utc_timestamp(at, "America/New_York"), "yyyy-MM-dd").alias("date"),
        F.coalesce("h.ticker", F.element_at("h.tickers", 1), F.lit("_")).alias("ticker"),
    )
