# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""python -m tests.lab serve --fleet FILE --inventory FILE [--subnet 127.X.Y] [--https] [--connection winrm|psrp] [--log FILE]
[--api-inventory FILE.computers.yml]"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import typing as t

from .lab import Lab


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m tests.lab', description='Simulated Windows endpoints speaking WinRM.')
    commands = parser.add_subparsers(dest='command', required=True)
    serve = commands.add_parser('serve', help='start a fleet and write its Ansible inventory')
    serve.add_argument('--fleet', required=True, help='fleet file, e.g. tests/lab/fleets/catalog.yml')
    serve.add_argument('--inventory', required=True, help='INI inventory to write')
    serve.add_argument('--subnet', help='127.X.Y prefix for the endpoint addresses (default: a random free one)')
    serve.add_argument('--https', action='store_true', help='also listen on 5986 with a generated CA; the inventory uses HTTPS')
    serve.add_argument('--transport', choices=('ntlm', 'basic'), help='inventory transport (default: the fleet file, else ntlm)')
    serve.add_argument('--connection', choices=('winrm', 'psrp'), default='winrm',
                       help='Ansible connection the inventory uses (psrp: PowerShell Remoting on the same listeners)')
    serve.add_argument('--log', help='request log, one JSON line per command (default: <workdir>/requests.jsonl)')
    serve.add_argument('--workdir', help='where certificates and the NTLM user file go (default: a temporary folder)')
    serve.add_argument('--api-inventory', help='also write a secure_endpoint.tetra.computers inventory source (name it '
                       '*.computers.yml) pointing at the lab console API')
    serve.add_argument('--time-scale', type=float, default=1.0, help='multiply every simulated delay (0.1 = ten times faster)')
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: t.Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    lab = Lab(args.fleet, workdir=args.workdir, subnet=args.subnet, https=args.https, transport=args.transport,
              time_scale=args.time_scale, inventory=args.inventory, log=args.log,
              connection=args.connection, api_inventory=args.api_inventory)
    with lab:
        print(lab.ready_line(), flush=True)
        while not stop.wait(0.5):
            pass
    print('lab stopped', flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return serve(args)


if __name__ == '__main__':
    sys.exit(main())
