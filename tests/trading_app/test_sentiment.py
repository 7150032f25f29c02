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
    # a second batch, written without looking at the lexicon
    ("Oracle stock climbs after cloud revenue tops forecasts", "positive"),
    ("Walmart cuts profit outlook, shares drop", "negative"),
    ("Goldman Sachs raises price target on Apple", "positive"),
    ("Starbucks sales slump in China", "negative"),
    ("Ford recalls 500,000 vehicles over brake issue", "negative"),
    ("Visa to announce quarterly results on Tuesday", "neutral"),
    ("Broadcom rallies on AI chip demand", "positive"),
    ("Chevron shares fall as oil prices tumble", "negative"),
    ("Salesforce beats on revenue, raises guidance", "positive"),
    ("Peloton warns of widening losses", "negative"),
    ("Costco reports monthly sales figures", "neutral"),
    ("Regulators approve Microsoft's acquisition of Activision", "positive"),
    ("SEC opens fraud probe into trading firm", "negative"),
    ("Uber turns first annual profit", "positive"),
    ("Nike shares plunge after weak holiday forecast", "negative"),
    ("Shopify stock soars on strong earnings", "positive"),
    ("Intel sinks after analysts downgrade chipmaker", "negative"),
    ("Berkshire Hathaway holds annual meeting in Omaha", "neutral"),
    ("Airline stocks rebound as travel demand recovers", "positive"),
    ("Crypto lender files for bankruptcy", "negative"),
]


def accuracy(extended: bool) -> float:
    hits = sum(sentiment.label(sentiment.score(text, extended)) == want for text, want in LABELLED)
    return hits / len(LABELLED)


def test_finance_lexicon_improves_accuracy():
    base, ext = accuracy(False), accuracy(True)
    assert ext > base
    assert ext >= 0.8
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
