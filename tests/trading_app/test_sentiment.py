from trading_app import sentiment

# (headline, expected label) - finance headlines VADER's stock lexicon gets wrong or right.
LABELLED = [
    ("Apple beats earnings estimates as revenue surges 8%", "positive"),
    ("Tesla shares plunge after deliveries miss expectations", "negative"),
    ("Microsoft upgraded to buy at Morgan Stanley", "positive"),
    ("Nvidia downgraded on valuation concerns", "negative"),
    ("Stocks rally as inflation cools", "positive"),
    ("Boeing shares tumble on new safety probe", "negative"),
    ("Amazon posts record quarterly profit", "positive"),
    ("Intel cuts guidance as demand slows", "negative"),
    ("Meta shares unchanged ahead of Fed decision", "neutral"),
    ("JPMorgan schedules annual shareholder meeting", "neutral"),
    ("Analysts turn bullish on Alphabet after cloud growth", "positive"),
    ("Bearish bets pile up against Netflix", "negative"),
    ("Pfizer wins FDA approval for new drug", "positive"),
    ("Moderna misses revenue forecast, stock sinks", "negative"),
    ("AMD shares jump on data center demand", "positive"),
    ("Exxon hit by lawsuit over emissions disclosures", "negative"),
    ("Disney to report earnings next week", "neutral"),
    ("Coca-Cola shares slump after weak outlook", "negative"),
    ("Netflix stock soars on subscriber beat", "positive"),
    ("Bank shares sink as credit losses mount", "negative"),
]


def accuracy(extended: bool) -> float:
    hits = sum(sentiment.label(sentiment.score(text, extended)) == want for text, want in LABELLED)
    return hits / len(LABELLED)


def test_finance_lexicon_improves_accuracy():
    base, ext = accuracy(False), accuracy(True)
    assert ext > base
    assert ext >= 0.85
    print(f"VADER accuracy: stock {base:.2f}, finance-extended {ext:.2f}")


def test_analyzer_built_once_and_scores_bounded():
    assert sentiment.analyzer() is sentiment.analyzer()
    assert sentiment.analyzer(False) is not sentiment.analyzer()
    for text, _ in LABELLED:
        assert -1.0 <= sentiment.score(text) <= 1.0
    assert sentiment.score("") == 0.0
    assert sentiment.score("shares") == 0.0  # neutralised


def test_score_articles():
    arts = sentiment.score_articles([{"headline": "Apple beats estimates", "summary": ""}])
    assert arts[0]["sentiment"] > 0.3 and arts[0]["sentiment_label"] == "positive"
