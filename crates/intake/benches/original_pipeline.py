"""The original system's ingest pipeline, re-created for comparison: per payload a JSON
parse, the watched tickers found by substring match ("$AAPL" in text), vaderSentiment
3.3.2 on the text, and one pymongo insert_one per record.

Usage: original_pipeline.py MONGO_URI DB X_LINES.jsonl ALPACA_FRAMES.jsonl TICKERS [LIMIT]
Prints posts_per_second and trades_per_second over at most LIMIT records of each (default
3000: one insert_one per record is slow enough that a sample gives the rate); drops DB.
"""
import json
import sys
import time

from pymongo import MongoClient
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

uri, db_name, x_path, alpaca_path, tickers = sys.argv[1:6]
tickers = tickers.split(",")
limit = int(sys.argv[6]) if len(sys.argv) > 6 else 3000
client = MongoClient(uri)
db = client[db_name]
analyzer = SentimentIntensityAnalyzer()

start = time.perf_counter()
posts = 0
with open(x_path, encoding="utf-8") as f:
    for line in f:
        if posts >= limit:
            break
        tweet = json.loads(line)["data"]
        text = tweet["text"]
        mentioned = [t for t in tickers if "$" + t in text]
        if not mentioned:
            continue
        db.posts.insert_one(
            {
                "id": tweet["id"],
                "text": text,
                "created_at": tweet["created_at"],
                "tickers": mentioned,
                "sentiment": analyzer.polarity_scores(text),
            }
        )
        posts += 1
posts_rate = posts / (time.perf_counter() - start)

start = time.perf_counter()
trades = 0
with open(alpaca_path, encoding="utf-8") as f:
    for line in f:
        if trades >= limit:
            break
        for m in json.loads(line):
            if m.get("T") != "t" or m.get("S") not in tickers:
                continue
            db.trades.insert_one({"ticker": m["S"], "price": m["p"], "size": m["s"], "ts": m["t"], "id": m.get("i")})
            trades += 1
trades_rate = trades / (time.perf_counter() - start)

client.drop_database(db_name)
print(f"posts {posts}")
print(f"trades {trades}")
print(f"posts_per_second {posts_rate:.1f}")
print(f"trades_per_second {trades_rate:.1f}")
