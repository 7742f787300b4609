"""Creates the S3 buckets and Kinesis streams the suite needs on an emulator (idempotent).

Usage: create-aws-resources.py ENDPOINT_URL
"""
import sys

import boto3

BUCKETS = ["cashtag-backups", "cashtag-models"]
STREAMS = {"cashtag-posts": 4, "cashtag-market": 4}


def main() -> None:
    endpoint = sys.argv[1]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for b in BUCKETS:
        if b not in have:
            s3.create_bucket(Bucket=b)
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    streams = set(kinesis.list_streams()["StreamNames"])
    for name, shards in STREAMS.items():
        if name not in streams:
            kinesis.create_stream(StreamName=name, ShardCount=shards)


if __name__ == "__main__":
    main()
