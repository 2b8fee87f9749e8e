# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/selftest.yml against the lab, and the "without WinRM" round trip through analyze.yml.

- The self-test passes on the catalog's `healthy` endpoint and saves its raw evidence.
- It fails clearly on the faults fleet's `evidence_shape` endpoint (fault `wrong_shape`: `install` is a
  list, the TLS chain is missing although TLS connected), while `healthy` in the same run passes.
- Lab-made evidence documents, written the way an administrator's local run writes them (UTF-8,
  UTF-8 with BOM, UTF-16LE with BOM), give the catalog's expected verdicts through analyze.yml.
"""

from __future__ import annotations

import glob
import json
import os
import re
import typing as t

import pytest
from tests.paths import REPO_ROOT

SELFTEST = os.path.join(REPO_ROOT, 'playbooks', 'selftest.yml')
DIAGNOSE = os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml')
ANALYZE = os.path.join(REPO_ROOT, 'playbooks', 'analyze.yml')
# Catalog hosts for the round trip: a pass, a network failure, French texts (non-ASCII), stale definitions.
ROUND_TRIP_HOSTS = ('healthy', 'revocation_blocked', 'french_locale', 'stale_recovers')
# How Windows writes a text file: -OutFile / Set-Content -Encoding UTF8 (5.1 adds a BOM) / `>` in a 5.1 console.
ENCODINGS = {'utf8': ('utf-8', b''), 'utf8bom': ('utf-8', b'\xef\xbb\xbf'), 'utf16': ('utf-16-le', b'\xff\xfe')}


def read_json(path: str) -> t.Any:
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    section = stdout[stdout.index('PLAY RECAP'):]
    counters = {}
    for host, numbers in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', section, re.M):
        counters[host] = {key: int(value) for key, value in re.findall(r'(\w+)=(\d+)', numbers)}
    return counters


def table_lines(stdout: str, host: str) -> list[str]:
    """The self-test table the playbook printed for `host` (debug output of a list of lines)."""
    match = re.search(r'^ok: \[%s\] => \{\n\s+"msg": \[\n(.*?)\n\s+\]\n\}' % re.escape(host), stdout, re.M | re.S)
    assert match, 'no table for %s in:\n%s' % (host, stdout[-4000:])
    return [json.loads(line.strip().rstrip(',')) for line in match.group(1).splitlines()]


@pytest.fixture(scope='module')
def faults_lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Any]:
    """The faults fleet (it holds `evidence_shape`), served in this process."""
    from tests.lab.lab import Lab  # pylint: disable=import-outside-toplevel
    from tests.lab.pytest_plugin import default_time_scale, fleet_path  # pylint: disable=import-outside-toplevel
    with Lab(fleet_path('faults'), workdir=str(tmp_path_factory.mktemp('faults-lab')), time_scale=default_time_scale()) as lab:
        yield lab


def test_selftest_passes_on_the_healthy_endpoint(lab_catalog: t.Any, ansible_env: dict[str, str],
                                                 run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    folder = str(tmp_path / 'selftest')
    done = run_playbook(['-i', lab_catalog.inventory, SELFTEST, '-e', json.dumps({'tetra_hosts': 'healthy', 'tetra_selftest_dir': folder})],
                        ansible_env, 'selftest-healthy.log')
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert recap(done.stdout)['healthy']['failed'] == 0
    lines = table_lines(done.stdout, 'healthy')
    assert lines[0].split() == ['section', 'check', 'result', 'detail']
    assert not [line for line in lines[2:] if ' FAIL ' in line], lines
    assert any(re.match(r'^context\s+probes ran in the requested context \(LocalSystem task ran\)\s+pass', line) for line in lines)
    assert any(re.match(r'^tls\s+chain present when the handshake reached the certificate\s+pass', line) for line in lines)
    assert any(re.match(r'^controller\s+parse_evidence and diagnose read it\s+pass\s+verdict ok / up_to_date', line) for line in lines)
    record = read_json(os.path.join(folder, 'healthy.json'))
    assert record['request']['context'] == 'system' and record['evidence']['context'] == 'system'
    assert record['request']['sections'] == ['install', 'posture', 'files', 'system', 'dns', 'tls', 'curl', 'http', 'roots', 'proxy']
    assert record['checks'] and all(check['ok'] for check in record['checks'])
    assert record['evidence']['probes']['tls']['chain']


def test_selftest_fails_clearly_on_a_wrong_shape(faults_lab: t.Any, ansible_env: dict[str, str],
                                                 run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    folder = str(tmp_path / 'selftest')
    extra = {'tetra_hosts': 'healthy:evidence_shape', 'tetra_selftest_dir': folder}
    done = run_playbook(['-i', faults_lab.inventory_path, SELFTEST, '-e', json.dumps(extra)], ansible_env, 'selftest-wrong-shape.log')
    assert done.returncode != 0, done.stdout[-4000:]
    counters = recap(done.stdout)
    assert counters['healthy']['failed'] == 0 and counters['evidence_shape']['failed'] == 1, counters
    # The failed task names the failed checks ...
    failure = re.search(r'^fatal: \[evidence_shape\]: FAILED! => (\{.*\})$', done.stdout, re.M)
    assert failure, done.stdout[-4000:]
    msg = json.loads(failure.group(1))['msg']
    assert re.match(r'^evidence_shape: 3 of \d+ self-test checks failed \(\d+ more not checked because the shape is wrong\): ', msg), msg
    assert 'install/required keys and types (install: expected an object (install), got list' in msg
    assert "tls/required keys and types (probes.tls: required key 'chain' is missing)" in msg
    assert 'tls/chain present when the handshake reached the certificate (TCP connected and the handshake reached the certificate' in msg
    assert msg.endswith('Evidence saved to %s.' % os.path.join(folder, 'evidence_shape.json'))
    # ... the table still shows every row ...
    lines = table_lines(done.stdout, 'evidence_shape')
    failed = {tuple(line.split()[:1]) + (line,) for line in lines[2:] if ' FAIL ' in line}
    assert {section for section, dummy in failed} == {'install', 'tls'}, lines
    assert not [line for line in table_lines(done.stdout, 'healthy')[2:] if ' FAIL ' in line]
    # ... and the raw evidence is kept, with the wrong shape, for a lab scenario.
    record = read_json(os.path.join(folder, 'evidence_shape.json'))
    assert isinstance(record['evidence']['install'], list) and 'chain' not in record['evidence']['probes']['tls']
    assert [c['check'] for c in record['checks'] if not c['ok'] and c['section'] == 'tls']


def test_local_run_evidence_round_trips_through_analyze(lab_catalog: t.Any, ansible_env: dict[str, str],
                                                        run_playbook: t.Callable[..., t.Any], tmp_path: t.Any) -> None:
    """Without WinRM: the script's output file, in every encoding Windows writes, gives the expected verdict."""
    saved, admin = str(tmp_path / 'saved'), tmp_path / 'admin'
    extra = {'tetra_hosts': ':'.join(ROUND_TRIP_HOSTS), 'tetra_evidence_dir': saved, 'tetra_latest_fetch': False,
             'tetra_report_dir': str(tmp_path / 'diagnose-report')}
    done = run_playbook(['-i', lab_catalog.inventory, DIAGNOSE, '-e', json.dumps(extra)], ansible_env, 'selftest-roundtrip-diagnose.log')
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    admin.mkdir()
    for host in ROUND_TRIP_HOSTS:
        document = read_json(os.path.join(saved, '%s.json' % host))['evidence']
        assert document['format'] == 1 and 'invalid_output' not in document
        # What the script writes: one bare evidence document (no saved-record wrapper), CRLF at the end.
        text = json.dumps(document, ensure_ascii=False) + '\r\n'
        for name, (codec, bom) in ENCODINGS.items():
            (admin / ('%s-%s.json' % (host, name))).write_bytes(bom + text.encode(codec))
    french = (admin / 'french_locale-utf16.json').read_bytes()
    assert french.startswith(b'\xff\xfe') and not french[2:].decode('utf-16-le').isascii(), 'the French document must carry non-ASCII text'
    report_dir = str(tmp_path / 'analyze-report')
    extra = {'evidence_dir': str(admin), 'tetra_report_dir': report_dir, 'tetra_latest_version': lab_catalog.latest_version}
    done = run_playbook([ANALYZE, '-e', json.dumps(extra)], ansible_env, 'selftest-roundtrip-analyze.log')
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = {row['host']: row for row in read_json(os.path.join(report_dir, 'report.json'))['hosts']}
    assert len(rows) == len(ROUND_TRIP_HOSTS) * len(ENCODINGS) == len(glob.glob(str(admin / '*.json')))
    wrong = []
    for host in ROUND_TRIP_HOSTS:
        want = {key: lab_catalog.expected[host][key] for key in ('status', 'cause')}
        for name in ENCODINGS:
            got = {key: rows['%s-%s' % (host, name)][key] for key in ('status', 'cause')}
            if got != want:
                wrong.append('%s as %s: expected %s, got %s' % (host, name, want, got))
    assert not wrong, '\n'.join(wrong)
