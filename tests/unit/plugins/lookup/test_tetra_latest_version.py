# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import io

import pytest
import yaml

from ansible import constants as C
from ansible.errors import AnsibleLookupError

from ansible_collections.secure_endpoint.tetra.plugins.lookup import tetra_latest_version as lookup
from ansible_collections.secure_endpoint.tetra.plugins.lookup.tetra_latest_version import LookupModule, check_url, parse_versions_id


def new_lookup() -> LookupModule:
    """The plugin with its documented options registered, as the plugin loader would."""
    plugin = LookupModule()
    plugin._load_name = 'secure_endpoint.tetra.tetra_latest_version'
    C.config.initialize_plugin_configuration_definitions('lookup', plugin._load_name, yaml.safe_load(lookup.DOCUMENTATION)['options'])
    return plugin


class Answer(io.BytesIO):
    def __init__(self, body: bytes, url: str = 'http://update.amp.cisco.com/av64bit/versions.id') -> None:
        super().__init__(body)
        self.url = url

    def geturl(self) -> str:
        return self.url


def run(monkeypatch, body=b'<v value="90606"/>', final_url=None, **options):
    opened = []

    def fake_open_url(url, **kwargs):
        opened.append(url)
        return Answer(body, final_url or url)
    monkeypatch.setattr(lookup, 'open_url', fake_open_url)
    return new_lookup().run([], {}, **options), opened


def test_the_version_is_read(monkeypatch):
    assert run(monkeypatch)[0] == [90606]


@pytest.mark.parametrize('url', ['file:///etc/passwd', 'ftp://update.amp.cisco.com/versions.id', '/etc/shadow',
                                 'gopher://x/', 'http:///nohost', 'http://host/\nInjected: 1', 'javascript:alert(1)'])
@pytest.mark.parametrize('on_error', ['warn', 'ignore', 'fail'])
def test_only_http_and_https_urls_whatever_on_error_says(monkeypatch, url, on_error):
    with pytest.raises(AnsibleLookupError, match='url must be an http:// or https:// URL'):
        run(monkeypatch, url=url, on_error=on_error)


def test_a_proxy_must_be_http_too(monkeypatch):
    with pytest.raises(AnsibleLookupError, match='proxy must be an http'):
        run(monkeypatch, proxy='socks5://proxy:1080')


def test_a_redirect_to_another_scheme_is_refused_without_echo(monkeypatch, recwarn):
    result, dummy = run(monkeypatch, body=b'root:x:0:0:root:/root:/bin/bash', final_url='file:///etc/passwd', on_error='ignore')
    assert result == [None]


def test_the_body_is_never_echoed(monkeypatch):
    with pytest.raises(AnsibleLookupError) as caught:
        run(monkeypatch, body=b'root:x:0:0:root:/root:/bin/bash\n', on_error='fail')
    assert 'root:x' not in str(caught.value) and 'not shown' in str(caught.value)
    with pytest.raises(ValueError) as parsed:
        parse_versions_id('secret content')
    assert 'secret' not in str(parsed.value)


def test_credentials_in_the_url_are_not_printed(monkeypatch):
    def failing(url, **kwargs):
        raise OSError('connection refused')
    monkeypatch.setattr(lookup, 'open_url', failing)
    with pytest.raises(AnsibleLookupError) as caught:
        new_lookup().run([], {}, url='https://user:pa55@update.example/versions.id', on_error='fail')
    assert 'pa55' not in str(caught.value) and 'update.example' in str(caught.value)


@pytest.mark.parametrize('timeout', [0, -1, 301])
def test_timeout_bounds(monkeypatch, timeout):
    with pytest.raises(AnsibleLookupError, match='timeout must be between 1 and 300'):
        run(monkeypatch, timeout=timeout)


def test_check_url_accepts_http_and_https():
    assert check_url('HTTPS://update.amp.cisco.com/av64bit/versions.id', 'url')
    assert check_url(None, 'proxy') is None
