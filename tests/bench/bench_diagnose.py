# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Side-by-side benchmarks against the lab, each variant next to its baseline in one run.

    python -m tests.bench.bench_diagnose [--scale] [--controller [--compare-ref REF]] [--fleet N [--slices S]] [--repeat 3]

1. One round trip (tetra_diagnose) vs the four single-purpose modules in a row (posture, resolve,
   tls_probe, proxy), on the catalog fleet: endpoint commands per host (from the lab's request log)
   and playbook wall time.
2. Concurrent vs sequential probes on the hosts whose network is dead (firewall, revocation, proxy):
   endpoint time per host as the evidence reports it.
3. With --scale: the 500-endpoint fleet at forks=50, hosts per minute.
   With --fleet N (e.g. 2000): playbooks/diagnose.yml over N endpoints of one lab process (the scale500 mix,
   scaled), then the same hosts as --slices S parallel ansible-playbook processes (round-robin slices, once
   as --limit @file on the whole inventory, once with an inventory per slice as AWX job slicing gives them)
   whose reports tetra_report merges into one; hosts/minute, controller CPU per host, peak memory (ru_maxrss
   of the ansible-playbook process tree) and the merged row count, which must equal the host count.
4. With --controller: controller CPU (user+sys of ansible and its workers) per host on 99 endpoints of the
   500-endpoint fleet: ad hoc ``raw`` with the tetra_summary callback (connection libraries imported once
   in the parent) vs without, and playbooks/diagnose.yml vs a one-task ``raw`` playbook (and, with
   --compare-ref REF, the diagnose.yml of an earlier commit beside them).
Prints a Markdown table; numbers are medians of --repeat runs. Not part of `make test` (no timed
assertions anywhere); run it with `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import resource
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t

import yaml

from tests.lab.lab import Lab
from tests.lab.scenario import load_fleet
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


@dataclasses.dataclass
class Run:
    """One measured command: wall seconds, CPU seconds (user+sys) and peak RSS (MB) of it and every process it forked."""
    wall: float
    cpu: float
    peak_mb: float
    returncode: int


def start(command: list[str], env: dict[str, str], log: str) -> tuple[subprocess.Popen[bytes], float]:
    with open(log, 'wb') as out:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), time.monotonic()


def finish(process: subprocess.Popen[bytes], started: float) -> Run:
    """wait4 gives this child's own rusage, its waited-for workers included (times summed, maxrss the largest)."""
    dummy, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(time.monotonic() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode)


def scaled_fleet(template: str, size: int, dest: str) -> str:
    """Write a fleet file of ``size`` endpoints with the host mix of ``template`` (counts scaled, rounded down, the rest
    added to the first entry); scenario file paths are made absolute so the copy can live anywhere."""
    with open(template, encoding='utf-8') as handle:
        fleet = yaml.safe_load(handle)
    base = os.path.dirname(os.path.abspath(template))
    fleet['scenario_files'] = [os.path.normpath(os.path.join(base, path)) for path in fleet.get('scenario_files', [])]
    total = sum(entry.get('count', 1) for entry in fleet['hosts'])
    for entry in fleet['hosts']:
        entry['count'] = entry.get('count', 1) * size // total
        entry['name'] = entry['name'].replace('{index:03d}', '{index:05d}')
    fleet['hosts'][0]['count'] += size - sum(entry['count'] for entry in fleet['hosts'])
    with open(dest, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(fleet, handle, sort_keys=False)
    return dest


def slice_hosts(hosts: list[str], count: int) -> list[list[str]]:
    """Round-robin slices (every count-th host), so each slice gets its share of every scenario; no empty slice."""
    if count < 1:
        raise ValueError('slices must be at least 1, got %d' % count)
    return [part for part in (hosts[index::count] for index in range(count)) if part]


def slice_inventory(text: str, hosts: list[str]) -> str:
    """An INI inventory with only ``hosts`` in its host sections (group variables kept): what an AWX job slice gets."""
    keep, lines, in_hosts = set(hosts), [], False
    for line in text.splitlines():
        if line.startswith('['):
            in_hosts = ':' not in line
        elif in_hosts and line.strip() and not line.startswith(('#', ';')) and line.split()[0] not in keep:
            continue
        lines.append(line)
    return '\n'.join(lines) + '\n'


def report_rows(folder: str) -> tuple[int, int]:
    """(rows, distinct hosts) of the report.json in folder."""
    with open(os.path.join(folder, 'report.json'), encoding='utf-8') as handle:
        rows = json.load(handle)['hosts']
    return len(rows), len({row['host'] for row in rows})


def diagnose_command(inventory: str, report: str, limit: str | None = None, forks: int = 50) -> list[str]:
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory, '-f', str(forks),
               os.path.join(REPO_ROOT, 'playbooks', 'diagnose.yml'), '-e', 'tetra_latest_version=90606',
               '-e', 'tetra_report_dir=' + report, '-e', '{"tetra_report_formats": ["json"]}']
    return command + (['--limit', '@' + limit] if limit else [])


def merge_command(reports: list[str], dest: str) -> list[str]:
    args = json.dumps({'merge': reports, 'dest': dest, 'formats': ['json']})
    return [os.path.join(os.path.dirname(sys.executable), 'ansible'), 'localhost', '-m', 'secure_endpoint.tetra.tetra_report', '-a', args]


def fleet_row(label: str, hosts: int, run: Run, rows: int) -> str:
    return ('| %s | %d hosts, %d report rows, rc %d | %.0f s wall, %.0f hosts/minute | %.3f CPU-s/host, peak %.0f MB |'
            % (label, hosts, rows, run.returncode, run.wall, hosts / run.wall * 60, run.cpu / hosts, run.peak_mb))


@contextlib.contextmanager
def served_fleet(fleet: str, work: str, env: dict[str, str]) -> t.Iterator[str]:
    """Serve ``fleet`` from its own process (python -m tests.lab serve) and yield its inventory path.

    Not in this process: a child inherits the RSS of the process that forks it until it execs, and the kernel keeps
    that as the child's ru_maxrss; a bench process holding thousands of endpoints would swamp the peak it measures."""
    inventory = os.path.join(work, 'lab.ini')
    with open(os.path.join(work, 'lab.log'), 'wb') as log:
        lab = subprocess.Popen([sys.executable, '-m', 'tests.lab', 'serve', '--fleet', fleet, '--inventory', inventory],
                               cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(inventory):
            if lab.poll() is not None or time.monotonic() > deadline:
                raise SystemExit('the lab did not start (see %s)' % os.path.join(work, 'lab.log'))
            time.sleep(0.5)
        yield inventory
    finally:
        lab.terminate()
        lab.wait(30)


def bench_fleet(size: int, slices: int, env: dict[str, str]) -> list[str]:
    """diagnose.yml over ``size`` endpoints in one process, then in ``slices`` parallel processes merged into one report,
    once with --limit slices of the whole inventory and once with an inventory per slice (as AWX job slicing does)."""
    work = tempfile.mkdtemp(prefix='tetra-bench-')
    fleet = scaled_fleet(os.path.join(FLEETS, 'scale500.yml'), size, os.path.join(work, 'fleet.yml'))
    hosts = sorted(spec.name for spec in load_fleet(fleet).hosts)
    rows = ['', '| fleet run | hosts, report rows, exit code | wall, throughput | controller CPU per host, peak RSS |', '|---|---|---|---|']
    with served_fleet(fleet, work, env) as inventory:
        one = finish(*start(diagnose_command(inventory, os.path.join(work, 'one')), env, os.path.join(work, 'one.log')))
        rows.append(fleet_row('diagnose.yml, one process, forks 50', len(hosts), one, report_rows(os.path.join(work, 'one'))[0]))
        for mode in ('limit', 'inventory') if slices else ():
            rows += bench_slices(inventory, hosts, slices, env, os.path.join(work, mode), mode)
    return rows


def slice_command(inventory: str, part: list[str], folder: str, mode: str, forks: int) -> list[str]:
    """The ansible-playbook command of one slice: --limit @file on the whole inventory, or its own inventory."""
    listing = os.path.join(folder, 'hosts' if mode == 'limit' else 'inventory.ini')
    with open(inventory, encoding='utf-8') as source, open(listing, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(part) + '\n' if mode == 'limit' else slice_inventory(source.read(), part))
    if mode == 'limit':
        return diagnose_command(inventory, os.path.join(folder, 'report'), listing, forks)
    return diagnose_command(listing, os.path.join(folder, 'report'), forks=forks)


def bench_slices(inventory: str, hosts: list[str], count: int, env: dict[str, str], work: str, mode: str) -> list[str]:
    parts = slice_hosts(hosts, count)
    forks = max(50 // len(parts), 1)  # the same concurrency as the single run, on the same cores
    folders = [os.path.join(work, 'slice-%d' % index) for index in range(len(parts))]
    started = []
    for folder, part in zip(folders, parts, strict=True):
        os.makedirs(folder)
        started.append(start(slice_command(inventory, part, folder, mode, forks), env, os.path.join(folder, 'playbook.log')))
    runs = [finish(*pair) for pair in started]
    total = Run(max(run.wall for run in runs), sum(run.cpu for run in runs), max(run.peak_mb for run in runs), max(run.returncode for run in runs))
    merged = finish(*start(merge_command([os.path.join(folder, 'report') for folder in folders], os.path.join(work, 'merged')),
                           env, os.path.join(work, 'merge.log')))
    rows, distinct = report_rows(os.path.join(work, 'merged'))
    if rows != len(hosts) or distinct != len(hosts):
        raise SystemExit('merged report has %d rows for %d distinct hosts, expected %d (logs in %s)' % (rows, distinct, len(hosts), work))
    label = '%d parallel slices (%s), forks %d each; peak of one slice' % (len(parts), '--limit @file' if mode == 'limit' else 'own inventory', forks)
    return [fleet_row(label, len(hosts), total, sum(report_rows(os.path.join(folder, 'report'))[0] for folder in folders)),
            '| merge of the %d slice reports (tetra_report merge) | %d rows = %d hosts, one per host | %.1f s wall | %.2f CPU-s |'
            % (len(parts), rows, len(hosts), merged.wall, merged.cpu)]


RAW_PLAY = '''
- hosts: windows
  gather_facts: false
  tasks:
    - ansible.builtin.raw: %s
'''


def median_endpoint_ms(report: str) -> int:
    """The median time the endpoints of a diagnose.yml run took (report rows' timings.endpoint_ms)."""
    with open(os.path.join(report, 'report.json'), encoding='utf-8') as handle:
        rows = json.load(handle)['hosts']
    return int(statistics.median((row.get('timings') or {}).get('endpoint_ms') or 0 for row in rows))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, controller CPU s of the command and every process it forked)."""
    cpu, started = _children_cpu(), time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, check=False, timeout=1800)
    return time.monotonic() - started, _children_cpu() - cpu


def staged_ref(ref: str) -> str:
    """The collection as of git ``ref`` staged in a temporary collections path (for a before/after comparison)."""
    root = tempfile.mkdtemp(prefix='tetra-ref-')
    dest = os.path.join(root, 'ansible_collections', 'secure_endpoint', 'tetra')
    os.makedirs(dest)
    archive = subprocess.run(['git', 'archive', ref], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', dest], input=archive, check=True)
    return root


def bench_controller(repeat: int, env: dict[str, str], limit: str = 'ep-0*', compare_ref: str | None = None) -> list[str]:
    bindir = os.path.dirname(sys.executable)
    plain = {k: v for k, v in env.items() if k != 'ANSIBLE_CALLBACKS_ENABLED'}
    with_cb = dict(plain, ANSIBLE_CALLBACKS_ENABLED='secure_endpoint.tetra.tetra_summary')
    rows = []
    with Lab(os.path.join(FLEETS, 'scale500.yml')) as lab:
        hosts = len([h for h in lab.hosts if h.startswith(limit.rstrip('*'))])
        adhoc = [os.path.join(bindir, 'ansible'), 'windows', '-i', lab.inventory_path, '-f', '25', '--limit', limit, '-m', 'raw', '-a', 'hostname']
        res: dict[str, list[tuple[float, float]]] = {'cb': [], 'plain': [], 'diag': [], 'raw': [], 'same': []}
        with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
            handle.write(RAW_PLAY % 'hostname')
        report = tempfile.mkdtemp()

        def diagnose_play(collection: str) -> list[str]:
            return [os.path.join(bindir, 'ansible-playbook'), '-i', lab.inventory_path, '-f', '50', '--limit', limit,
                    os.path.join(collection, 'playbooks', 'diagnose.yml'), '-e', 'tetra_latest_version=90606', '-e', 'tetra_report_dir=' + report]
        diagnose = diagnose_play(REPO_ROOT)
        raw_play = [os.path.join(bindir, 'ansible-playbook'), '-i', lab.inventory_path, '-f', '50', '--limit', limit, handle.name]
        # The same one-task raw playbook with an endpoint that takes as long as a diagnosis (measured by a first, unmeasured
        # diagnose.yml run): ansible-core's parent polls its workers for as long as they run, whatever the task.
        measured(diagnose, plain)
        sleep_ms = median_endpoint_ms(report)
        with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as same:
            same.write(RAW_PLAY % ('Start-Sleep -Milliseconds %d' % sleep_ms))
        same_play = raw_play[:-1] + [same.name]
        if compare_ref:
            ref_root = staged_ref(compare_ref)
            ref_diagnose = diagnose_play(os.path.join(ref_root, 'ansible_collections', 'secure_endpoint', 'tetra'))
            res['ref'] = []
        for dummy in range(repeat):
            res['cb'].append(measured(adhoc, with_cb))
            res['plain'].append(measured(adhoc, plain))
            res['diag'].append(measured(diagnose, plain))
            if compare_ref:
                res['ref'].append(measured(ref_diagnose, dict(plain, ANSIBLE_COLLECTIONS_PATH=ref_root)))
            res['raw'].append(measured(raw_play, plain))
            res['same'].append(measured(same_play, plain))
        os.unlink(handle.name)
        os.unlink(same.name)
    med = {k: (statistics.median(w for w, c in v), statistics.median(c for w, c in v)) for k, v in res.items()}
    rows.append('| ad hoc raw, %d hosts, forks 25 | tetra_summary enabled (libraries preloaded): %.1f CPU-s, %.1f s wall | '
                'no callback: %.1f CPU-s, %.1f s wall (%.2fx CPU) |'
                % (hosts, med['cb'][1], med['cb'][0], med['plain'][1], med['plain'][0], med['plain'][1] / max(med['cb'][1], 1e-9)))
    rows.append('| controller CPU per host, %d hosts, forks 50 | diagnose.yml: %.3f CPU-s/host, %.1f s wall | '
                'one-task raw playbook: %.3f CPU-s/host, %.1f s wall (ratio %.2f) |'
                % (hosts, med['diag'][1] / hosts, med['diag'][0], med['raw'][1] / hosts, med['raw'][0], med['diag'][1] / max(med['raw'][1], 1e-9)))
    rows.append('| controller CPU per host, %d hosts, forks 50 | diagnose.yml: %.3f CPU-s/host, %.1f s wall | '
                'one-task raw playbook whose endpoint takes as long (Start-Sleep %d ms, the median diagnosis): %.3f CPU-s/host, '
                '%.1f s wall (ratio %.2f) |'
                % (hosts, med['diag'][1] / hosts, med['diag'][0], sleep_ms, med['same'][1] / hosts, med['same'][0],
                   med['diag'][1] / max(med['same'][1], 1e-9)))
    if compare_ref:
        rows.append('| controller CPU per host, %d hosts, forks 50 | diagnose.yml of %s: %.3f CPU-s/host, %.1f s wall (ratio to raw %.2f) | '
                    'diagnose.yml of this tree: %.3f CPU-s/host |'
                    % (hosts, compare_ref, med['ref'][1] / hosts, med['ref'][0], med['ref'][1] / max(med['raw'][1], 1e-9), med['diag'][1] / hosts))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--scale', action='store_true', help='also run the 500-endpoint fleet')
    parser.add_argument('--controller', action='store_true', help='also measure controller CPU (callback preload, diagnose.yml vs raw)')
    parser.add_argument('--only-controller', action='store_true', help='run only the controller CPU measurements')
    parser.add_argument('--compare-ref', metavar='GIT_REF', help='also run diagnose.yml of this git ref beside the others (controller CPU)')
    parser.add_argument('--fleet', type=int, default=0, metavar='N', help='also run diagnose.yml over N endpoints, in one process and in slices')
    parser.add_argument('--slices', type=int, default=4, help='parallel ansible-playbook processes for the sliced runs of --fleet (0: none)')
    parser.add_argument('--only-fleet', action='store_true', help='run only the --fleet measurements')
    args = parser.parse_args()
    env = environment()
    rows = ['| case | variant | baseline |', '|---|---|---|']
    if args.only_controller:
        print('\n'.join(rows + bench_controller(args.repeat, env, compare_ref=args.compare_ref)))
        return
    if args.only_fleet:
        print('\n'.join(bench_fleet(args.fleet, args.slices, env)[1:]))
        return
    rows += bench_catalog(args.repeat, env)
    if args.controller:
        rows += bench_controller(args.repeat, env, compare_ref=args.compare_ref)
    if args.scale:
        rows += bench_scale(env)
    if args.fleet:
        rows += bench_fleet(args.fleet, args.slices, env)
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
