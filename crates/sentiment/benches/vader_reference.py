"""Times the reference vaderSentiment 3.3.2 on the texts of a JSON-lines file.

Usage: vader_reference.py TEXTS.jsonl PASSES  → prints `posts_per_second <float>`
"""
import json
import sys
import time

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
passes = int(sys.argv[2])
analyzer = SentimentIntensityAnalyzer()
start = time.perf_counter()
n = 0
for _ in range(passes):
    for t in texts:
        analyzer.polarity_scores(t)
        n += 1
elapsed = time.perf_counter() - start
print(f"posts_per_second {n / elapsed:.1f}")
