# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: tetra_latest_version
short_description: Latest published TETRA definition version
version_added: 1.0.0
author:
  - Secure Endpoint TETRA collection maintainers (@secure-endpoint-tetra)
description:
  - Fetches Cisco's public C(versions.id) file (no credentials needed) on the controller and returns the latest
    published TETRA version as an integer, the number Cisco's Health Checker compares endpoints with.
  - Run it once per play (for example with C(run_once)); when it cannot be fetched it returns null with a
    warning (O(on_error=warn)), and verdicts then use the highest version seen in the run.
options:
  _terms:
    description: Not used.
    required: false
  url:
    description:
      - The C(versions.id) address. C(av32bit) holds the 32-bit engine's version.
      - Only C(http://) and C(https://) URLs are accepted; any other scheme (C(file://), C(ftp://)...) is an error
        whatever O(on_error) says.
    type: str
    default: http://update.amp.cisco.com/av64bit/versions.id
  timeout:
    description: Seconds to wait for the answer, 1 to 300.
    type: int
    default: 10
  proxy:
    description:
      - HTTP proxy URL to fetch through, for example C(http://proxy.corp.example:8080). By default the controller's environment decides.
      - Only C(http://) and C(https://) proxy URLs are accepted.
    type: str
  on_error:
    description: What to do when the version cannot be fetched or read.
    type: str
    choices: [fail, warn, ignore]
    default: warn
notes:
  - The file is undocumented by Cisco; its body holds C(value="NNNNN").
  - Messages never quote the body of the answer, so a wrong O(url) cannot print a file's content.
'''

EXAMPLES = r'''
- name: Fetch the latest TETRA version once
  ansible.builtin.set_fact:
    tetra_latest_version: "{{ lookup('secure_endpoint.tetra.tetra_latest_version', timeout=5) }}"
  run_once: true
'''

RETURN = r'''
_raw:
  description: The latest TETRA version, or null when it could not be fetched and O(on_error) is not C(fail).
  type: list
  elements: int
'''

import contextlib
import os
import re
from urllib.parse import urlsplit

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

_VALUE = re.compile(r'value\s*=\s*"(\d+)"')
display = Display()
_PROXY_VARIABLES = ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY')


_SCHEMES = ('http', 'https')


def parse_versions_id(body: str) -> int:
    """The version number in a versions.id body, or ValueError (which never quotes the body)."""
    match = _VALUE.search(body)
    if not match:
        raise ValueError('no value="NNNNN" in the answer (%d characters, not shown)' % len(body))
    return int(match.group(1))


def check_url(value: str | None, option: str) -> str | None:
    """The URL when its scheme is http or https and it names a host, else ValueError naming the option."""
    if value is None:
        return None
    text = str(value)
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in _SCHEMES or not host or re.search(r'[\s\x00-\x1f\x7f]', text):
        scheme = (parts.scheme if parts is not None else '') or '(none)'
        raise ValueError('%s must be an http:// or https:// URL with a host name (scheme %s is not allowed)' % (option, scheme[:20]))
    return text


def shown_url(url: str) -> str:
    """The URL for messages: without user:password."""
    parts = urlsplit(url)
    if '@' not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit('@', 1)[1]).geturl()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        url = self.get_option('url')
        try:
            check_url(url, 'url')
            check_url(self.get_option('proxy') or None, 'proxy')
            if not 1 <= int(self.get_option('timeout')) <= 300:
                raise ValueError('timeout must be between 1 and 300 seconds (got %s)' % self.get_option('timeout'))
        except ValueError as exc:
            raise AnsibleLookupError('tetra_latest_version: %s' % exc) from None
        try:
            return [self.fetch(url)]
        except Exception as exc:  # pylint: disable=broad-except  # any failure becomes one clear message
            message = 'Cannot fetch the latest TETRA version from %s: %s' % (shown_url(url), to_text(exc)[:300])
            if self.get_option('on_error') == 'fail':
                raise AnsibleLookupError(message) from None
            if self.get_option('on_error') == 'warn':
                display.warning(message + '; verdicts will use the highest version seen in the run')
            return [None]

    def fetch(self, url: str) -> int:
        with proxy_environment(self.get_option('proxy')):
            response = open_url(url, timeout=self.get_option('timeout'), http_agent='secure_endpoint.tetra')
            final = response.geturl() if hasattr(response, 'geturl') else url
            check_url(final, 'the redirected url')
            return parse_versions_id(to_text(response.read(65536), errors='replace'))


@contextlib.contextmanager
def proxy_environment(proxy: str | None):
    """open_url takes its proxy from the environment: set it for this one request only."""
    if not proxy:
        yield
        return
    saved = {name: os.environ.get(name) for name in _PROXY_VARIABLES}
    os.environ.update(dict.fromkeys(_PROXY_VARIABLES, proxy))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
