"""Sentiment of a customer's message and its conversation's trend.

VADER (``vaderSentiment``, a lexicon with rules for negation, intensifiers, capitals, "!" and
emoji) scores English and the English words of romanised messages; for text in other scripts only
emoji and emoticons carry a signal, so such a message without any scores None rather than a
made-up neutral. The trend is an exponentially weighted mean over the conversation's customer
messages, so a turn for the worse shows after one or two messages.
"""

from __future__ import annotations

from typing import Any

#: VADER reads a message; past this its cost grows and its verdict does not change
SAMPLE = 2000
#: weight of the newest message in the trend
TREND_WEIGHT = 0.5


class Sentiment:
    def __init__(self) -> None:
        self._analyzer: Any = None

    def load(self) -> None:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str | None, language: str | None) -> float | None:
        """Compound score in [-1, 1]; None when the message carries no signal VADER can read."""
        sample = (text or "")[:SAMPLE]
        if not sample.strip():
            return None
        self.load()
        scores = self._analyzer.polarity_scores(sample)
        if language not in (None, "en", "si-Latn", "ta-Latn") and scores["neu"] >= 0.999:
            return None  # another script and no emoji, no English word with a polarity
        return round(float(scores["compound"]), 3)


def trend(previous: float | None, score: float | None) -> float | None:
    if score is None:
        return previous
    if previous is None:
        return score
    return round(TREND_WEIGHT * score + (1 - TREND_WEIGHT) * previous, 3)


def label(score: float | None) -> str | None:
    """VADER's usual cut-offs."""
    if score is None:
        return None
    if score >= 0.05:
        return "positive"
    if score <= -0.05:
        return "negative"
    return "neutral"
