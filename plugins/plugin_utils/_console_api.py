# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Secure Endpoint console's API v1 client (the console state it returns is read by _console.py).

API facts (shared/reference/secure-endpoint.md, section 7): Basic authentication with the client ID
and API key; ``GET /v1/computers?limit=500`` pages through ``metadata.links.next``; 3,000 requests an
hour per organisation, HTTP 429 with rate-limit headers beyond that. The API key never appears in a
message, a result or a log line.
"""

from __future__ import annotations

import json
import time
import typing as t
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.urls import open_url

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._console import ConsoleError

Data = t.Dict[str, t.Any]

REGION_API_URLS = {
    'nam': 'https://api.amp.cisco.com',
    'eu': 'https://api.eu.amp.cisco.com',
    'apjc': 'https://api.apjc.amp.cisco.com',
}
MAX_PAGE_SIZE = 500
USER_AGENT = 'secure_endpoint.tetra'
# Both spellings are seen in Cisco's material; the first found wins.
RESET_HEADERS = ('X-RateLimit-Reset', 'X-Rate-Limit-Reset')
REMAINING_HEADERS = ('X-RateLimit-Remaining', 'X-Rate-Limit-Remaining')
STATUS_MESSAGES = {
    400: 'the API refused the request (400 Bad Request)',
    401: 'authentication failed (401): unknown API key or client ID',
    403: 'access denied (403): the API credentials lack read access to computers',
    404: 'not found (404): check the API URL or region',
}


def api_url(url: str | None, region: str | None) -> str:
    """The API base URL from an explicit URL (http/https, no user:password) or the region."""
    if url:
        parts = urlsplit(str(url))
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ConsoleError('url must be an http:// or https:// URL with a host name')
        if parts.username or parts.password:
            raise ConsoleError('url must not contain user:password; use client_id and api_key')
        return str(url).rstrip('/')
    key = str(region or 'nam').lower()
    if key not in REGION_API_URLS:
        raise ConsoleError('region must be one of %s, got %r' % (', '.join(REGION_API_URLS), region))
    return REGION_API_URLS[key]


def _header(headers: t.Any, names: tuple[str, ...]) -> str | None:
    if headers is None:
        return None
    for name in names:
        value = headers.get(name)
        if value is not None:
            return str(value)
    return None


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(str(value).strip()), 0.0) if value is not None else None
    except ValueError:
        return None


class ConsoleClient:
    """Read-only Secure Endpoint API v1 client over ansible.module_utils.urls.open_url."""

    def __init__(self, base_url: str, client_id: str, api_key: str, timeout: int = 30, validate_certs: bool = True,
                 ca_path: str | None = None, max_retries: int = 3, max_wait: float = 60.0,
                 sleep: t.Callable[[float], None] = time.sleep, opener: t.Callable[..., t.Any] = open_url) -> None:
        if not client_id or not api_key:
            raise ConsoleError('client_id and api_key are required (options or SECURE_ENDPOINT_CLIENT_ID / SECURE_ENDPOINT_API_KEY)')
        self.base_url = base_url.rstrip('/')
        self.client_id = str(client_id)
        self._api_key = str(api_key)
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.opener = opener
        self.requests = 0
        self.waited = 0.0

    def __repr__(self) -> str:
        return 'ConsoleClient(%s, client_id=%s, api_key=<hidden>)' % (self.base_url, self.client_id)

    def _same_origin(self, url: str) -> bool:
        mine, other = urlsplit(self.base_url), urlsplit(url)
        return (mine.scheme, mine.hostname, mine.port) == (other.scheme, other.hostname, other.port)

    def get(self, path_or_url: str, params: dict[str, t.Any] | None = None) -> Data:
        """One GET answered with JSON; 429 waits (bounded) and retries; other errors raise ConsoleError."""
        url = path_or_url if '://' in path_or_url else self.base_url + path_or_url
        if not self._same_origin(url):
            # The credentials go only to the configured API host, whatever a `next` link says.
            raise ConsoleError('the API pointed to another host (%s); refusing to send the credentials there' % urlsplit(url).hostname)
        if params:
            url += ('&' if '?' in url else '?') + urlencode(params, doseq=True)
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = self.opener(url, method='GET', headers={'Accept': 'application/json'}, url_username=self.client_id,
                                       url_password=self._api_key, force_basic_auth=True, timeout=self.timeout,
                                       validate_certs=self.validate_certs, ca_path=self.ca_path, http_agent=USER_AGENT,
                                       follow_redirects='none', use_netrc=False)
                body = response.read()
                headers = getattr(response, 'headers', None)
            except HTTPError as exc:
                if exc.code == 429 and attempt <= self.max_retries:
                    self._wait(exc.headers, attempt)
                    continue
                raise self._http_error(exc, url) from None
            except URLError as exc:
                raise ConsoleError('cannot reach the Secure Endpoint API at %s: %s' % (self._shown(url), exc.reason)) from None
            except (OSError, ValueError) as exc:
                raise ConsoleError('cannot reach the Secure Endpoint API at %s: %s' % (self._shown(url), exc)) from None
            data = self._json(body, url)
            remaining = _seconds(_header(headers, REMAINING_HEADERS))
            if remaining is not None and remaining <= 0:
                # The next request would be refused: wait for the window to reset first (bounded).
                self._wait(headers, 1, proactive=True)
            return data

    def _wait(self, headers: t.Any, attempt: int, proactive: bool = False) -> None:
        delay = _seconds(_header(headers, ('Retry-After',))) or _seconds(_header(headers, RESET_HEADERS))
        if delay is None:
            delay = min(2.0 ** attempt, self.max_wait)
        if delay > self.max_wait:
            if proactive:
                return  # the next call gets its 429 and fails clearly then
            raise ConsoleError('rate limited (429): the API asks to wait %.0f s, more than max_wait %.0f s; try again later'
                               % (delay, self.max_wait), 429)
        self.waited += delay
        self.sleep(delay)

    def _shown(self, url: str) -> str:
        return url.split('?', 1)[0]

    def _json(self, body: bytes, url: str) -> Data:
        try:
            data = json.loads(body.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            raise ConsoleError('the API answer from %s is not JSON (%d bytes, not shown)' % (self._shown(url), len(body or b''))) from None
        if not isinstance(data, dict):
            raise ConsoleError('the API answer from %s is not a JSON object' % self._shown(url))
        return data

    def _http_error(self, exc: HTTPError, url: str) -> ConsoleError:
        if exc.code == 429:
            return ConsoleError('rate limited (429) after %d retries; try again later' % self.max_retries, 429)
        text = STATUS_MESSAGES.get(exc.code)
        if text is None:
            text = ('the API failed (%d %s); try again later' % (exc.code, exc.reason) if exc.code >= 500
                    else 'the API refused the request (%d %s)' % (exc.code, exc.reason))
        return ConsoleError('%s: %s' % (self._shown(url), text), exc.code)

    def version(self) -> Data:
        return self.get('/v1/version')

    def computers(self, page_size: int = MAX_PAGE_SIZE, params: dict[str, t.Any] | None = None,
                  max_pages: int = 10000) -> t.Iterator[Data]:
        """Every computer record, page after page through metadata.links.next."""
        query = dict(params or {}, limit=max(1, min(int(page_size), MAX_PAGE_SIZE)))
        page = self.get('/v1/computers', query)
        for dummy in range(max_pages):
            records = page.get('data')
            if not isinstance(records, list):
                raise ConsoleError('the API answer has no "data" list of computers')
            for record in records:
                if isinstance(record, dict):
                    yield record
            following = ((page.get('metadata') or {}).get('links') or {}).get('next')
            if not following:
                return
            page = self.get(str(following))
        raise ConsoleError('more than %d pages of computers; stopping' % max_pages)
