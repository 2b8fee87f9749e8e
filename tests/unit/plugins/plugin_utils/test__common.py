# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""parse_timestamp accepts and refuses what strptime with TIMESTAMP_FORMAT does (it replaced strptime for speed)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import TIMESTAMP_FORMAT, parse_timestamp


def strptime(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize('text', ['2026-12-01T02:59:12Z', '2026-1-5T2:5:1Z', '2024-02-29T23:59:59Z'])
def test_same_moment_as_strptime(text: str) -> None:
    assert parse_timestamp(text) == strptime(text)
    assert parse_timestamp(text).tzinfo is datetime.timezone.utc


@pytest.mark.parametrize('text', ['2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-12-01T02:59:60Z', '2026-12-01T02:59:12',
                                  '2026-12-01 02:59:12Z', ' 2026-12-01T02:59:12Z', '2026-12-01T02:59:12Z\n', '26-12-01T02:59:12Z', ''])
def test_refuses_what_strptime_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        strptime(text)
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_refuses_digits_of_other_scripts() -> None:
    with pytest.raises(ValueError):
        parse_timestamp('\uff12026-12-01T02:59:12Z')


def test_not_a_string_is_a_type_error_as_with_strptime() -> None:
    with pytest.raises(TypeError):
        parse_timestamp(None)  # type: ignore[arg-type]
