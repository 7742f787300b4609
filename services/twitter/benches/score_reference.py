"""The Python reference for `cashtag-twitter score`: JSON lines in, JSON lines out, VADER
(vaderSentiment 3.3.2) only — what the original system computed per post.

Usage: score_reference.py < TEXTS.jsonl > SCORES.jsonl
"""
import json
import sys

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

analyzer = SentimentIntensityAnalyzer()
out = sys.stdout
for line in sys.stdin:
    text = json.loads(line)["text"]
    out.write(json.dumps({"text": text, "vader": analyzer.polarity_scores(text)}, ensure_ascii=False))
    out.write("\n")
