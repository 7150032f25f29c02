"""NewsAPI adapter (newsapi-python ``/v2/everything``).

Queries ``"AAPL" OR "Apple" OR ...`` for the symbols, maps articles to the common shape and tags each
with the symbols its title/description mentions. Errors: ``rateLimited`` -> transient rate_limit;
apiKey* -> permanent auth_error; a non-JSON body (e.g. an HTML 502 page) -> transient server_error
(the HTTP status, kept from the session's response hook, decides: 429 -> rate_limit).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from trading_app import conf
from trading_app.errors import newsapi_info, to_step_error
from trading_app.providers.http import with_timeouts
from trading_app.providers.simulated import COMPANIES
from workflows_app.errors import PermanentStepError, TransientStepError


class NewsApiNews:
    name = "newsapi"

    def __init__(self, api_key: str, session: requests.Session | None = None):
        from newsapi import NewsApiClient  # newsapi-python: loaded only where NewsAPI is configured

        self.session = with_timeouts(session or requests.Session())
        self.last_status: int | None = None
        self.session.hooks["response"].append(self._hook)
        self.client = NewsApiClient(api_key=api_key, session=self.session)

    def _hook(self, response, *args, **kwargs):
        self.last_status = response.status_code

    @classmethod
    def from_settings(cls) -> NewsApiNews:
        key = conf.get("NEWSAPI_KEY")
        if not key:
            raise PermanentStepError("NEWSAPI_KEY is not set", error_class="config_error")
        return cls(str(key))

    def generation(self) -> int:
        return 0

    def get_news(self, symbols, limit=20, start=None, end=None, keywords=None) -> list[dict]:
        from newsapi.newsapi_exception import NewsAPIException

        terms = []
        for s in symbols:
            terms.append(f'"{s}"')
            if s in COMPANIES:
                terms.append(f'"{COMPANIES[s]}"')
        query = " OR ".join(terms) or "stocks"
        if keywords:
            query = f"({query}) AND ({' OR '.join(repr(k).replace(chr(39), chr(34)) for k in keywords)})"
        start = start or datetime.now(UTC) - timedelta(days=1)
        try:
            data = self.client.get_everything(
                q=query[:500], from_param=start.strftime("%Y-%m-%dT%H:%M:%S"),
                to=end.strftime("%Y-%m-%dT%H:%M:%S") if end else None, language="en", sort_by="publishedAt",
                page_size=max(1, min(int(limit), 100)))
        except NewsAPIException as exc:
            info = newsapi_info((exc.get_exception() or {}).get("code"))
            raise to_step_error(info, f"newsapi: {(exc.get_exception() or {}).get('message') or info.error_class}") \
                from exc
        except requests.exceptions.Timeout as exc:
            raise TransientStepError("newsapi: timeout", error_class="timeout") from exc
        except requests.exceptions.ConnectionError as exc:
            raise TransientStepError("newsapi: connection error", error_class="connection") from exc
        except ValueError as exc:  # non-JSON body (HTML error page, empty body)
            status = self.last_status
            cls = "rate_limit" if status == 429 else "server_error"
            if status is not None and 400 <= status < 500 and status != 429:
                raise PermanentStepError(f"newsapi: HTTP {status} with a non-JSON body",
                                         error_class="news_api_error") from exc
            raise TransientStepError(f"newsapi: HTTP {status} with a non-JSON body", error_class=cls) from exc
        items = []
        for i, a in enumerate(data.get("articles") or []):
            title = a.get("title") or ""
            desc = a.get("description") or ""
            text = f"{title} {desc}"
            tagged = [s for s in symbols if s in text or (COMPANIES.get(s) and COMPANIES[s] in text)]
            items.append({
                "id": a.get("url") or f"newsapi-{i}", "headline": title, "summary": desc,
                "source": (a.get("source") or {}).get("name") or "", "symbols": tagged,
                "published_at": a.get("publishedAt"), "url": a.get("url") or "", "provider": "newsapi",
                "breaking": title.upper().startswith("BREAKING"),
            })
        return items[: int(limit)]
