"""Signal generation: a transparent score of sentiment, RSI and MACD, compared with a threshold.

Each input becomes a component in [-1, +1] (positive = bullish):

* sentiment  s = the symbol's mean VADER compound score (already in [-1, 1]).
* RSI        r, read one of two ways (``rsi_reading``, a signal_generation param):
    - ``standard`` (default), the way most traders read it: overbought (RSI > 70) weighs *against*
      buying and oversold (RSI < 30) *toward* it: -(rsi - 70) / 15 above 70 (73 -> -0.2, 85 -> -1),
      +(30 - rsi) / 15 below 30 (27 -> +0.2, 15 -> +1). Inside 30..70 a healthy trend counts with it,
      most at 60 / 40 and fading to 0 at the 70 / 30 edges: (rsi - 50) / 10 within 40..60
      (58 -> +0.8), (70 - rsi) / 10 within 60..70, -(rsi - 30) / 10 within 30..40.
    - ``momentum``: a high RSI is strength: (rsi - 50) / 20 within 30..70 (58 -> +0.4, 70 -> +1),
      fading above 70 as 1 - (rsi - 70) / 15 (85 -> 0, 100 -> -1), symmetrically below 30.
* MACD       m = +1 when the MACD line is above its signal line ("bullish"), -1 otherwise.

score = (w_s*s + w_r*r + w_m*m) / (w_s + w_r + w_m), default weights s 0.4, r 0.2, m 0.4 (params).
A component whose input is missing from the context is left out and the weights re-normalised
(``components`` in the output says which were used).

confidence = |score| (0..1); signal = BUY if score > 0, SELL if score < 0, and HOLD when
confidence < threshold (default 0.7). The specification's example (sentiment 0.72, RSI 58, MACD
bullish) scores 0.4*0.72 + 0.2*0.8 + 0.4*1 = 0.848 -> BUY, confidence 0.85 (momentum reading: 0.768).
"""
from __future__ import annotations

DEFAULT_WEIGHTS = {"sentiment": 0.4, "rsi": 0.2, "macd": 0.4}


RSI_READINGS = ("standard", "momentum")


def rsi_component(rsi: float, reading: str = "standard") -> float:
    if reading == "momentum":
        if rsi > 70:
            value = 1.0 - (rsi - 70.0) / 15.0
        elif rsi < 30:
            value = -1.0 + (30.0 - rsi) / 15.0
        else:
            value = (rsi - 50.0) / 20.0
    elif reading == "standard":
        d = rsi - 50.0
        sign = 1.0 if d >= 0 else -1.0
        if abs(d) <= 10:
            value = d / 10.0
        elif abs(d) <= 20:
            value = sign * (20.0 - abs(d)) / 10.0
        else:  # overbought / oversold: against the move
            value = -sign * (abs(d) - 20.0) / 15.0
    else:
        raise ValueError(f"rsi reading must be one of {RSI_READINGS}")
    return max(-1.0, min(1.0, value))


def macd_component(macd) -> float | None:
    if macd in ("bullish", "bearish"):
        return 1.0 if macd == "bullish" else -1.0
    return None


def score_signal(*, sentiment: float | None, rsi: float | None, macd: str | None, threshold: float = 0.7,
                 weights: dict | None = None, rsi_reading: str = "standard") -> dict:
    w = dict(DEFAULT_WEIGHTS, **(weights or {}))
    comps: dict[str, float] = {}
    if sentiment is not None:
        comps["sentiment"] = max(-1.0, min(1.0, float(sentiment)))
    if rsi is not None:
        comps["rsi"] = rsi_component(float(rsi), rsi_reading)
    m = macd_component(macd)
    if m is not None:
        comps["macd"] = m
    total_w = sum(w[k] for k in comps)
    if not comps or total_w <= 0:
        return {"signal": "HOLD", "confidence": 0.0, "score": 0.0, "components": {}, "weights": {},
                "threshold": threshold, "reason": "no inputs (sentiment, rsi or macd) in the context"}
    score = sum(w[k] * v for k, v in comps.items()) / total_w
    confidence = round(abs(score), 4)
    direction = "BUY" if score > 0 else "SELL" if score < 0 else "HOLD"
    signal = direction if confidence >= threshold else "HOLD"
    out = {
        "signal": signal, "confidence": confidence, "score": round(score, 4), "direction": direction,
        "components": {k: round(v, 4) for k, v in comps.items()},
        "weights": {k: round(w[k] / total_w, 4) for k in comps},
        "threshold": threshold, "rsi_reading": rsi_reading,
        "inputs": {"sentiment": sentiment, "rsi": rsi, "macd": macd},
    }
    if signal == "HOLD":
        out["reason"] = f"confidence {confidence} below threshold {threshold}" if direction != "HOLD" \
            else "score is exactly neutral"
    return out
