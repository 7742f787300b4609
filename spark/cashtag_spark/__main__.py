"""`python -m cashtag_spark`: runs the Spark roll-up job (see `rollup`).

Settings come from the flags or from the suite's environment (`CASHTAG_MONGO_URI`,
`CASHTAG_MONGO_DATABASE`, `CASHTAG_AWS_ENDPOINT`, `CASHTAG_AWS_REGION`,
`CASHTAG_SINKS_KINESIS_POSTS_STREAM`, `CASHTAG_SINKS_KINESIS_MARKET_STREAM`,
`CASHTAG_REDIS_URL`, `CASHTAG_REDIS_PREFIX`), so it runs beside the suite with the suite's
environment. Progress (input rows per second, batch duration, watermark, rows dropped as
late) is printed as one JSON line per micro-batch and sent as `spark.batch` events.
"""

import argparse
import json
import os
import sys


def env(name, default=""):
    return os.environ.get(name, default)


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m cashtag_spark", description=__doc__.splitlines()[0])
    p.add_argument("--source", default=env("CASHTAG_SPARK_SOURCE", "cashtag-kinesis"), choices=["cashtag-kinesis", "aws-kinesis"])
    p.add_argument("--posts-stream", default=env("CASHTAG_SINKS_KINESIS_POSTS_STREAM", "cashtag-posts"))
    p.add_argument("--market-stream", default=env("CASHTAG_SINKS_KINESIS_MARKET_STREAM", "cashtag-market"))
    p.add_argument("--kinesis-endpoint", default=env("CASHTAG_AWS_ENDPOINT"))
    p.add_argument("--region", default=env("CASHTAG_AWS_REGION", "us-east-1"))
    p.add_argument("--mongo-uri", default=env("CASHTAG_MONGO_URI", "mongodb://127.0.0.1:27017"))
    p.add_argument("--database", default=env("CASHTAG_MONGO_DATABASE", "cashtag"))
    p.add_argument("--checkpoint", default=env("CASHTAG_SPARK_CHECKPOINT", "/var/lib/cashtag/spark/checkpoint"))
    p.add_argument("--watermark", default=env("CASHTAG_SPARK_WATERMARK", "2 minutes"), help="how late a record may be (default 2 minutes)")
    p.add_argument("--master", default=env("CASHTAG_SPARK_MASTER", "local[2]"))
    p.add_argument("--trigger-secs", type=float, default=float(env("CASHTAG_SPARK_TRIGGER_SECS", "10")))
    p.add_argument("--available-now", action="store_true", help="process what the streams hold, then stop (backfills, tests)")
    p.add_argument("--redis-url", default=env("CASHTAG_REDIS_URL"), help="where the job's events go (the suite's events stream); empty: none")
    p.add_argument("--redis-prefix", default=env("CASHTAG_REDIS_PREFIX", "cashtag"))
    p.add_argument("--parquet", default=env("CASHTAG_SPARK_PARQUET"), help="also write the raw records as Parquet here (date=/ticker= partitions; a path or s3a://)")
    return p.parse_args(argv)


def progress_line(name, q):
    """The query's latest micro-batch, and totals since the job started: input records,
    and late rows dropped — by Spark's state operators or refused by the writer, per
    ticker of a record (a post about two tickers is two rows)."""
    from cashtag_spark.rollup import LATE_ROWS

    p = q.lastProgress
    if not p:
        return None
    recent = q.recentProgress
    spark_late = sum(s.get("numRowsDroppedByWatermark", 0) for b in recent for s in b.get("stateOperators", []))
    return {
        "query": name,
        "batch": p.get("batchId"),
        "input_rows": p.get("numInputRows"),
        "input_rows_per_second": p.get("inputRowsPerSecond"),
        "processed_rows_per_second": p.get("processedRowsPerSecond"),
        "batch_ms": p.get("durationMs", {}).get("triggerExecution"),
        "watermark": p.get("eventTime", {}).get("watermark"),
        "input_rows_total": sum(b.get("numInputRows", 0) for b in recent),
        "late_rows_total": spark_late + LATE_ROWS.get(name, 0),
    }


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    # Spark's Python workers run with this interpreter (the one that has the packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # ... and import this package (the data source is unpickled there), wherever they run.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [here, os.environ.get("PYTHONPATH", "")] if p)
    from pyspark.sql import SparkSession

    from cashtag_spark import events, kinesis, rollup

    bus = events.Events(a.redis_url, a.redis_prefix)

    def on_late(collection, minutes, rows):
        bus.emit(
            "warning",
            "spark.late",
            f"{rows} records arrived after the {a.watermark} watermark and were left out of {len(minutes)} "
            f"{collection} minute(s); `cashtag-analysis aggregate --from` recomputes them from MongoDB",
            collection=collection,
            late_rows=rows,
            minutes=minutes[:20],
        )

    spark = (
        SparkSession.builder.appName("cashtag-rollup")
        .master(a.master)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    if a.source == "cashtag-kinesis":
        spark.dataSource.register(kinesis.KinesisSource)
    options = {"endpoint": a.kinesis_endpoint, "region": a.region}
    posts = rollup.source(spark, a.source, a.posts_stream, options)
    market = rollup.source(spark, a.source, a.market_stream, options)
    queries = []

    def start(name, df, sink):
        w = df.writeStream.queryName(name).option("checkpointLocation", os.path.join(a.checkpoint, name))
        w = w.trigger(availableNow=True) if a.available_now else w.trigger(processingTime=f"{a.trigger_secs} seconds")
        queries.append((name, sink(w).start()))

    for name, df, count in [
        ("sentiment_1m", rollup.sentiment_1m(posts, a.watermark), "posts"),
        ("price_1m", rollup.price_1m(market, a.watermark), "trades"),
    ]:
        writer = rollup.upsert(a.mongo_uri, a.database, name, a.watermark, os.path.join(a.checkpoint, name), count, on_late)
        start(name, df, lambda w, writer=writer: w.outputMode("update").foreachBatch(writer))
    if a.parquet:
        for name, df in [("raw_posts", rollup.raw(posts)), ("raw_market", rollup.raw(market))]:
            start(name, df, lambda w, name=name: w.format("parquet").option("path", os.path.join(a.parquet, name)).partitionBy("date", "ticker"))
    print(json.dumps({"started": [n for n, _ in queries], "source": a.source, "watermark": a.watermark}), flush=True)
    seen = {}

    def report(name, q):
        line = progress_line(name, q)
        if line and seen.get(name) != line["batch"]:
            seen[name] = line["batch"]
            print(json.dumps(line), flush=True)
            bus.emit(
                "activity",
                "spark.batch",
                f"{name}: batch {line['batch']}, {line['input_rows']} records in {line['batch_ms']} ms, watermark {line['watermark']}",
                **line,
            )

    try:
        while any(q.isActive for _, q in queries):
            for name, q in queries:
                q.awaitTermination(1)
                report(name, q)
        for name, q in queries:
            if q.exception():
                raise q.exception()
            report(name, q)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
