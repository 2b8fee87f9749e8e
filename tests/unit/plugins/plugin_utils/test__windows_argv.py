# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Unit tests of tests/lab/windows.py (issue 9, item 5): the judges of every command line must
themselves read command lines as Windows does."""

from __future__ import annotations

import base64
import random

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._remote import BOOTSTRAP, build_command
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._request import quote_windows_argument as quote_argument
from tests.lab.windows import (
    EXIT_BAD_PARAMETER, CommandLineError, command_line_to_argv, decode_encoded_command, parse_powershell_argv,
    parse_winrs_command,
)


def encode(script: str) -> str:
    return base64.b64encode(script.encode('utf-16-le')).decode('ascii')


# ---------------------------------------------------------------------------------------------
# command_line_to_argv


# Microsoft Learn, "Parsing C++ command-line arguments" (the table of examples); the program name
# comes first and is split by its own rule, so every example follows a plain one.
@pytest.mark.parametrize('arguments, expected', [
    (r'"a b c" d e', ['a b c', 'd', 'e']),
    (r'"ab\"c" "\\" d', ['ab"c', '\\', 'd']),
    (r'a\\\b d"e f"g h', [r'a\\\b', 'de fg', 'h']),
    (r'a\\\"b c d', [r'a\"b', 'c', 'd']),
    (r'a\\\\"b c" d e', [r'a\\b c', 'd', 'e']),
])
def test_command_line_to_argv_matches_the_microsoft_examples(arguments, expected):
    assert command_line_to_argv('prog.exe ' + arguments) == ['prog.exe'] + expected


@pytest.mark.parametrize('line, expected', [
    ('"C:\\Program Files\\app\\" x', ['C:\\Program Files\\app\\', 'x']),  # quoted program name: no backslash rule
    ('C:\\app\\"x y', ['C:\\app\\"x', 'y']),  # unquoted program name ends at the first white space
    ('prog\t a \t  b  ', ['prog', 'a', 'b']),  # runs of spaces and tabs separate, trailing ones add nothing
    ('prog "" b', ['prog', '', 'b']),  # an empty quoted argument is an argument
    ('prog "a b', ['prog', 'a b']),  # an unterminated quote runs to the end
])
def test_command_line_to_argv_program_name_and_separator_rules(line, expected):
    assert command_line_to_argv(line) == expected


@pytest.mark.parametrize('line', ['prog "a""b"', 'prog a\0b', '"unterminated program'])
def test_command_line_to_argv_refuses_what_windows_versions_read_differently(line):
    with pytest.raises(CommandLineError):
        command_line_to_argv(line)


# ---------------------------------------------------------------------------------------------
# quote_argument


HOSTILE_VALUES = [
    '', ' ', 'plain', 'two words', 'tab\there', 'a"b', '"', '""', '"quoted"', 'trailing\\', 'trailing space\\ ',
    'C:\\Program Files\\app\\', '\\\\server\\share\\', '\\"', 'a\\\\"b', 'back\\slash "and" quote\\\\',
    "it's & | < > ^ %PATH% $(x) `n", '\\\\\\', ' leading', 'trailing ', 'mixed \t"\\ end\\"',
]


@pytest.mark.parametrize('value', HOSTILE_VALUES)
def test_quote_argument_round_trips_through_command_line_to_argv(value):
    assert command_line_to_argv('prog ' + quote_argument(value)) == ['prog', value]


def test_quote_argument_round_trips_a_whole_argument_list():
    line = 'prog ' + ' '.join(quote_argument(value) for value in HOSTILE_VALUES)
    assert command_line_to_argv(line)[1:] == HOSTILE_VALUES


def test_quote_argument_round_trips_generated_values_of_spaces_tabs_quotes_and_backslashes():
    generator = random.Random(9)  # fixed seed: the same 2,000 values every run
    values = [''.join(generator.choice(' \t"\\a') for dummy in range(generator.randint(0, 10))) for dummy2 in range(2000)]
    for value in values:
        assert command_line_to_argv('prog ' + quote_argument(value) + ' next') == ['prog', value, 'next'], repr(value)


def test_quote_argument_leaves_plain_words_unquoted():
    assert quote_argument('-EncodedCommand') == '-EncodedCommand'
    assert quote_argument('C:\\dir\\') == 'C:\\dir\\'


# ---------------------------------------------------------------------------------------------
# parse_powershell_argv


def collection_argv() -> list[str]:
    command = build_command('Write-Output 1', {'action': 'collect'})[0]
    return command_line_to_argv(command)


def test_parse_powershell_argv_accepts_the_collections_command():
    launch = parse_powershell_argv(collection_argv())
    assert launch.execution_policy == 'Unrestricted'
    assert '@($input | ForEach-Object' in launch.script
    assert [line.strip() for line in BOOTSTRAP.splitlines() if line.strip()] == launch.script.splitlines()
    assert launch.script.splitlines()[-1].startswith('If (-not $?)')


def test_parse_powershell_argv_reads_parameter_names_case_insensitively():
    argv = ['powershell.exe', '-noprofile', '-EXECUTIONPOLICY', 'bypass', '-encodedcommand', encode('Write-Output 1')]
    assert parse_powershell_argv(argv).script == 'Write-Output 1'


def test_parse_winrs_command_joins_command_and_arguments_with_spaces():
    value = encode('Write-Output 1')
    assert parse_winrs_command('PowerShell', ['-NoProfile', '-EncodedCommand', value]) == \
        ['PowerShell', '-NoProfile', '-EncodedCommand', value]


def replace_value(argv: list[str], new_value: str) -> list[str]:
    return argv[:-1] + [new_value]


@pytest.mark.parametrize('mutate, message', [
    (lambda argv: argv + ['extra'], 'after the -EncodedCommand'),
    (lambda argv: argv + [';', 'If'], 'after the -EncodedCommand'),
    (lambda argv: replace_value(argv, argv[-1] + ';'), 'Base64'),
    (lambda argv: replace_value(argv, '}'), 'Base64'),
    (lambda argv: replace_value(argv, 'not*base64!'), 'Base64'),
    (lambda argv: replace_value(argv, 'QUJD'), 'odd number of bytes'),  # 'ABC': 3 bytes are not UTF-16LE
    (lambda argv: replace_value(argv, 'AAA'), 'Base64'),  # length not a multiple of 4
    (lambda argv: argv[:-1], 'requires an argument'),
    (lambda argv: argv[:1] + ['-Unknown'] + argv[1:], 'unexpected argument'),
    (lambda argv: argv[:1] + ['-ExecutionPolicy', 'Sometimes'] + argv[1:], 'Invalid argument'),
    (lambda argv: argv[:1] + ['-ExecutionPolicy'], 'Missing argument'),
], ids=['extra-argument', 'old-suffix-words', 'base64-semicolon', 'closing-brace', 'non-base64', 'odd-utf16',
        'bad-length', 'missing-value', 'unknown-parameter', 'bad-policy', 'missing-policy'])
def test_parse_powershell_argv_rejects_what_powershell_would_not_run_as_meant(mutate, message):
    with pytest.raises(CommandLineError, match=message) as error:
        parse_powershell_argv(mutate(collection_argv()))
    assert error.value.exit_code == EXIT_BAD_PARAMETER


@pytest.mark.parametrize('argv', [['cmd.exe', '/c', 'dir'], ['PowerShell', '-NoProfile'], []])
def test_parse_powershell_argv_rejects_other_programs_and_interactive_starts(argv):
    with pytest.raises(CommandLineError) as error:
        parse_powershell_argv(argv)
    assert error.value.exit_code == 1


def test_decode_encoded_command_ignores_white_space_like_convert_from_base64_string():
    value = encode('Write-Output 1')
    assert decode_encoded_command(value[:8] + '\r\n ' + value[8:]) == 'Write-Output 1'
