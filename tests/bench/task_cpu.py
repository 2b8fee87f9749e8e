# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller CPU per task: run ansible-playbook with every forked worker recording its own rusage at exit.

    python -m tests.bench.task_cpu OUT.jsonl -i inventory playbook.yml ...    (then)    python -m tests.bench.task_cpu --sum OUT.jsonl

A worker is forked for one host and one task, so its rusage at exit is that task's cost for that host; the
parent's own rusage is recorded at exit as the task PARENT. Used for the per-task tables in docs/benchmarks.md.
"""

from __future__ import annotations

import atexit
import collections
import json
import resource
import sys
import typing as t


def record(out: str, task: str) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(out, 'a', encoding='utf-8') as handle:
        handle.write(json.dumps({'task': task, 'user': usage.ru_utime, 'sys': usage.ru_stime, 'rss_kb': usage.ru_maxrss}) + '\n')


def run_playbook(out: str, args: list[str]) -> None:
    from ansible.cli.playbook import main  # pylint: disable=import-outside-toplevel
    from ansible.executor.process.worker import WorkerProcess  # pylint: disable=import-outside-toplevel

    original = WorkerProcess.run

    def run(self: t.Any) -> t.Any:
        try:
            return original(self)
        finally:
            record(out, self._task.get_name())

    WorkerProcess.run = run  # type: ignore[method-assign]
    atexit.register(record, out, 'PARENT')
    sys.argv = ['ansible-playbook'] + args
    main()


def summary(path: str) -> list[str]:
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            entry = json.loads(line)
            total = totals[entry['task']]
            total[0] += 1
            total[1] += entry['user']
            total[2] += entry['sys']
            total[3] = max(total[3], entry['rss_kb'])
    rows = sorted(totals.items(), key=lambda item: -(item[1][1] + item[1][2]))
    lines = ['%-80.80s n=%5d user %7.2f sys %7.2f per run %.4f s, peak %d MB' % (name, n, user, system, (user + system) / n, rss // 1024)
             for name, (n, user, system, rss) in rows]
    return lines + ['all: %.2f CPU-s' % sum(user + system for dummy, user, system, dummy2 in totals.values())]


if __name__ == '__main__':
    if sys.argv[1] == '--sum':
        print('\n'.join(summary(sys.argv[2])))
    else:
        run_playbook(sys.argv[1], sys.argv[2:])
