"""cashtag's Spark stage: the minute roll-ups from the Kinesis streams (`rollup`), read
with Spark's Python Data Source API (`kinesis`) or EMR's connector; `python -m
cashtag_spark --help`."""
