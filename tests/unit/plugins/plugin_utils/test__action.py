# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""redact() (the collection's one redaction) and save_evidence() (controller files)."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils import _action, _remote, _text
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._action import REDACTED, evidence_file_name, redact, save_evidence

SECRET = 'hunter2'


@pytest.mark.parametrize('text', [
    # elements, any case, namespaced, with attributes
    '<config><proxy><password>hunter2</password></proxy></config>',
    '<PASSWORD>hunter2</PASSWORD>',
    '<Password type="clear">hunter2</Password>',
    '<passwd>hunter2</passwd>',
    '<proxy_password>hunter2</proxy_password>',
    '<ProxyPassword>hunter2</ProxyPassword>',
    '<ns:password>hunter2</ns:password>',
    '<pass>hunter2</pass>',
    '<password><![CDATA[hunter2]]></password>',
    # attributes, quoted either way, escaped, unquoted
    '<proxy server="p" password="hunter2" user="u"/>',
    "<proxy PassWord='hunter2'/>",
    '<proxy password=\\"hunter2\\"/>',
    'http://proxy/?user=u&password=hunter2&x=1',
    # JSON, any case, nested in a JSON string, numbers
    '{"password": "hunter2", "user": "u"}',
    '{"Proxy_Password":"hunter2"}',
    '{"doc": "{\\"password\\": \\"hunter2\\"}"}',
    '{"passwd": "hun\\"ter2"}',
    # escaped the way ConvertTo-Json and HTML write the tags
    '\\u003cpassword\\u003ehunter2\\u003c/password\\u003e',
    '&lt;proxy_password&gt;hunter2&lt;/proxy_password&gt;',
    # cut by truncation or by a quote that starts inside the value
    '<proxy><password>hunter2',
    '{"password": "hunter2',
    'password="hunter2',
    'ssword>hunter2</password><port>8080</port>',
    'hunter2</proxy_password>',
])
def test_redact_covers_every_form(text):
    redacted = redact(text)
    assert SECRET not in redacted and 'hun' not in redacted.replace('hunk', '')
    assert REDACTED in redacted


def test_redact_keeps_what_is_not_a_password():
    text = '<proxy><bypass>*.corp</bypass><username>svc</username><password/></proxy>'
    assert redact(text) == text
    assert redact('ProxyBypass passed the test') == 'ProxyBypass passed the test'


def test_redact_walks_structures_and_masks_password_keys():
    document = {'files': {'policy_xml': {'text': '<password>hunter2</password>'}}, 'proxy': {'Password': 'hunter2', 'password_set': True},
                'list': ['{"pwd": 1234}', ('<passwd>hunter2</passwd>',)], 'n': 5}
    redacted = redact(document)
    assert SECRET not in json.dumps(redacted) and '1234' not in json.dumps(redacted)
    assert redacted['proxy']['password_set'] is True and redacted['n'] == 5
    assert document['proxy']['Password'] == 'hunter2'  # a copy, the input is untouched


def test_one_redaction_everywhere():
    assert _action.redact is _text.redact


def test_remote_messages_quote_output_redacted_and_printable():
    quoted = _remote.quote_output(b'<config><password>hunter2</password>\x1b[2J</config>')
    assert SECRET not in quoted and '\x1b' not in quoted and '\\x1b[2J' in quoted
    cut = _remote.quote_output(b'x' * 390 + b'<password>hunter2</password>', limit=400)
    assert SECRET not in cut


def test_save_evidence_redacts_everything_it_stores(tmp_path):
    path = save_evidence(str(tmp_path), 'ep-1', {'action': 'collect'},
                         {'files': {'policy_xml': {'text': '<proxy password="hunter2"><password>hunter2</password></proxy>'}}},
                         details={'stdout': '{"password": "hunter2"}'})
    assert SECRET not in open(path, encoding='utf-8').read()


def test_colliding_host_names_never_share_an_evidence_file(tmp_path):
    hosts = ['ep/7', 'ep_7', 'ep:7', 'ep 7', '.ep_7', 'EP/7']
    paths = [save_evidence(str(tmp_path), host, {}, {'format': 1}) for host in hosts]
    assert len(set(paths)) == len(hosts) == len(os.listdir(str(tmp_path)))
    for host, path in zip(hosts, paths, strict=True):
        assert json.loads(open(path, encoding='utf-8').read())['host'] == host  # what analyze.yml names the replay host
    # A name that is already a safe file name keeps it; a cleaned one gets a short stable hash of the real name.
    assert os.path.basename(paths[1]) == 'ep_7.json'
    assert re.fullmatch(r'ep_7-[0-9a-f]{8}\.json', os.path.basename(paths[0]))
    assert evidence_file_name('ep/7') == os.path.basename(paths[0]) == evidence_file_name('ep/7')
    assert re.fullmatch(r'endpoint-[0-9a-f]{8}\.json', evidence_file_name('..'))
    assert re.fullmatch(r'ep_-[0-9a-f]{8}\.json', evidence_file_name('ep\ud800'))


def test_save_evidence_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep me')
    folder = tmp_path / 'evidence'
    folder.mkdir()
    for name in ('ep-1.json.tmp', 'ep-1.json'):
        os.symlink(str(victim), str(folder / name))
    path = save_evidence(str(folder), 'ep-1', {}, {'format': 1})
    assert victim.read_text() == 'keep me'
    assert not os.path.islink(path) and json.loads(open(path, encoding='utf-8').read())['host'] == 'ep-1'
    assert not [n for n in os.listdir(str(folder)) if n.endswith('.tmp') and not os.path.islink(str(folder / n))]


def test_save_evidence_writes_hostile_text(tmp_path):
    path = save_evidence(str(tmp_path), 'ep-1', {}, {'host': {'computer_name': 'EP\ud800\x1b[2J'}})
    saved = json.loads(open(path, encoding='utf-8').read())
    assert saved['evidence']['host']['computer_name'] == 'EP\ud800\x1b[2J'  # stored as it came (JSON-escaped), for replay
