# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Side-by-side benchmarks against the lab, each variant next to its baseline in one run.

    python -m tests.bench.bench_diagnose [--scale] [--repeat 3]

1. One round trip (tetra_diagnose) vs the four single-purpose modules in a row (posture, resolve,
   tls_probe, proxy), on the catalog fleet: endpoint commands per host (from the lab's request log)
   and playbook wall time.
2. Concurrent vs sequential probes on the hosts whose network is dead (firewall, revocation, proxy):
   endpoint time per host as the evidence reports it.
3. With --scale: the 500-endpoint fleet at forks=50, hosts per minute.
4. With --controller: controller CPU (user+sys of ansible and its workers) per host on 99 endpoints of the
   500-endpoint fleet: ad hoc ``raw`` with the tetra_summary callback (connection libraries imported once
   in the parent) vs without, and playbooks/diagnose.yml vs a one-task ``raw`` playbook.
Prints a Markdown table; numbers are medians of --repeat runs. Not part of `make test` (no timed
assertions anywhere); run it with `make bench`.
"""

from __future__ import annotations

import argparse
import resource
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from tests.lab.lab import Lab
from tests.paths import REPO_ROOT

FLEETS = os.path.join(REPO_ROOT, 'tests', 'lab', 'fleets')
DEAD_NETWORK = ('firewall_blocked', 'revocation_blocked', 'proxy_unreachable', 'system_context_revocation')

ONE_TRIP = '''
- hosts: windows
  gather_facts: false
  tasks:
    - secure_endpoint.tetra.tetra_diagnose: {concurrent: %(concurrent)s, latest_version: 90606}
      register: d
      ignore_unreachable: true
    - ansible.builtin.copy: {content: "{{ d | to_json }}", dest: "%(out)s/{{ inventory_hostname }}.json", mode: "0644"}
      delegate_to: localhost
      when: d.verdict is defined
'''
FOUR_TRIPS = '''
- hosts: windows
  gather_facts: false
  ignore_unreachable: true
  tasks:
    - secure_endpoint.tetra.tetra_posture:
    - secure_endpoint.tetra.tetra_resolve:
    - secure_endpoint.tetra.tetra_tls_probe:
    - secure_endpoint.tetra.tetra_proxy:
'''


def playbook(lab: Lab, text: str, forks: int, env: dict[str, str]) -> float:
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        handle.write(text)
    started = time.monotonic()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', lab.inventory_path, '-f', str(forks), handle.name],
                   cwd=REPO_ROOT, env=env, capture_output=True, check=False, timeout=1800)
    os.unlink(handle.name)
    return time.monotonic() - started


def commands_per_host(lab: Lab, before: int) -> float:
    entries = lab.requests()[before:]
    hosts = {entry['host'] for entry in entries}
    return len(entries) / max(len(hosts), 1)


def endpoint_ms(folder: str, hosts: tuple[str, ...]) -> list[int]:
    found = []
    for host in hosts:
        path = os.path.join(folder, host + '.json')
        if os.path.exists(path):
            with open(path, encoding='utf-8') as handle:
                found.append(json.load(handle)['verdict']['timings']['endpoint_ms'])
    return found


def environment() -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING='false', ANSIBLE_NOCOLOR='1', PYTHONPATH=REPO_ROOT)
    env.setdefault('ANSIBLE_COLLECTIONS_PATH', os.path.join(REPO_ROOT, '.build', 'collections'))
    return env


def bench_catalog(repeat: int, env: dict[str, str]) -> list[str]:
    rows = []
    with Lab(os.path.join(FLEETS, 'catalog.yml')) as lab:
        results: dict[str, list[float]] = {'one': [], 'four': [], 'cmd_one': [], 'cmd_four': [], 'conc': [], 'seq': []}
        for dummy in range(repeat):
            for concurrent, key in ((True, 'conc'), (False, 'seq')):
                out = tempfile.mkdtemp()
                before = len(lab.requests())
                wall = playbook(lab, ONE_TRIP % {'concurrent': str(concurrent).lower(), 'out': out}, 25, env)
                if concurrent:
                    results['one'].append(wall)
                    results['cmd_one'].append(commands_per_host(lab, before))
                results[key].extend(endpoint_ms(out, DEAD_NETWORK))
            before = len(lab.requests())
            results['four'].append(playbook(lab, FOUR_TRIPS, 25, env))
            results['cmd_four'].append(commands_per_host(lab, before))
        med = {k: statistics.median(v) if v else float('nan') for k, v in results.items()}
        rows.append('| catalog (%d hosts), forks 25 | tetra_diagnose: %.1f commands/host, %.1f s | 4 modules: %.1f commands/host, %.1f s |'
                    % (len(lab.hosts), med['cmd_one'], med['one'], med['cmd_four'], med['four']))
        rows.append('| dead-network hosts %s | concurrent probes: endpoint %.1f s (max %.1f s) | sequential probes: endpoint %.1f s (max %.1f s) |'
                    % ('/'.join(DEAD_NETWORK), med['conc'] / 1000, max(results['conc'] or [0]) / 1000,
                       med['seq'] / 1000, max(results['seq'] or [0]) / 1000))
    return rows


def bench_scale(env: dict[str, str]) -> list[str]:
    with Lab(os.path.join(FLEETS, 'scale500.yml')) as lab:
        out = tempfile.mkdtemp()
        wall = playbook(lab, ONE_TRIP % {'concurrent': 'true', 'out': out}, 50, env)
        done = len([name for name in os.listdir(out) if name.endswith('.json')])
        return ['| scale500 (%d hosts), forks 50 | %d verdicts in %.0f s | %.0f hosts/minute |' % (len(lab.hosts), done, wall, done / wall * 60)]


RAW_PLAY = '''
- hosts: windows
  gather_facts: false
  tasks:
    - ansible.builtin.raw: hostname
'''


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, controller CPU s of the command and every process it forked)."""
    cpu, started = _children_cpu(), time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, check=False, timeout=1800)
    return time.monotonic() - started, _children_cpu() - cpu


def bench_controller(repeat: int, env: dict[str, str], limit: str = 'ep-0*') -> list[str]:
    bindir = os.path.dirname(sys.executable)
    plain = {k: v for k, v in env.items() if k != 'ANSIBLE_CALLBACKS_ENABLED'}
    with_cb = dict(plain, ANSIBLE_CALLBACKS_ENABLED='secure_endpoint.tetra.tetra_summary')
    rows = []
    with Lab(os.path.join(FLEETS, 'scale500.yml')) as lab:
        hosts = len([h for h in lab.hosts if h.startswith(limit.rstrip('*'))])
        adhoc = [os.path.join(bindir, 'ansible'), 'windows', '-i', lab.inventory_path, '-f', '25', '--limit', limit, '-m', 'raw', '-a', 'hostname']
        res: dict[str, list[tuple[float, float]]] = {'cb': [], 'plain': [], 'diag': [], 'raw': []}
        with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
            handle.write(RAW_PLAY)
        report = tempfile.mkdtemp()
        diagnose = [os.path.join(bindir, 'ansible-playbook'), '-i', lab.inventory_path, '-f', '50', '--limit', limit,
                    os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml'), '-e', 'tetra_latest_version=90606', '-e', 'tetra_report_dir=' + report]
        raw_play = [os.path.join(bindir, 'ansible-playbook'), '-i', lab.inventory_path, '-f', '50', '--limit', limit, handle.name]
        for dummy in range(repeat):
            res['cb'].append(measured(adhoc, with_cb))
            res['plain'].append(measured(adhoc, plain))
            res['diag'].append(measured(diagnose, plain))
            res['raw'].append(measured(raw_play, plain))
        os.unlink(handle.name)
    med = {k: (statistics.median(w for w, c in v), statistics.median(c for w, c in v)) for k, v in res.items()}
    rows.append('| ad hoc raw, %d hosts, forks 25 | tetra_summary enabled (libraries preloaded): %.1f CPU-s, %.1f s wall | '
                'no callback: %.1f CPU-s, %.1f s wall (%.2fx CPU) |'
                % (hosts, med['cb'][1], med['cb'][0], med['plain'][1], med['plain'][0], med['plain'][1] / max(med['cb'][1], 1e-9)))
    rows.append('| controller CPU per host, %d hosts, forks 50 | diagnose.yml: %.3f CPU-s/host, %.1f s wall | '
                'one-task raw playbook: %.3f CPU-s/host, %.1f s wall (ratio %.2f) |'
                % (hosts, med['diag'][1] / hosts, med['diag'][0], med['raw'][1] / hosts, med['raw'][0], med['diag'][1] / max(med['raw'][1], 1e-9)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--scale', action='store_true', help='also run the 500-endpoint fleet')
    parser.add_argument('--controller', action='store_true', help='also measure controller CPU (callback preload, diagnose.yml vs raw)')
    parser.add_argument('--only-controller', action='store_true', help='run only the controller CPU measurements')
    args = parser.parse_args()
    env = environment()
    rows = ['| case | variant | baseline |', '|---|---|---|']
    if args.only_controller:
        print('\n'.join(rows + bench_controller(args.repeat, env)))
        return
    rows += bench_catalog(args.repeat, env)
    if args.controller:
        rows += bench_controller(args.repeat, env)
    if args.scale:
        rows += bench_scale(env)
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
