# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tests for tools/pscheck.py: every rule fires on a bad script, good 5.1 code passes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PSCHECK = os.path.join(ROOT, 'tools', 'pscheck.py')

_spec = importlib.util.spec_from_file_location('pscheck', PSCHECK)
pscheck = importlib.util.module_from_spec(_spec)
sys.modules['pscheck'] = pscheck
_spec.loader.exec_module(pscheck)  # type: ignore[union-attr]


def rules(src: str | bytes) -> list[str]:
    data = src.encode('utf-8') if isinstance(src, str) else src
    return [f.rule for f in pscheck.check_source(data, 'test.ps1')]


GOOD_51_SCRIPT = r"""
# Copyright: Contributors to the secure_endpoint.tetra collection
# A realistic Windows PowerShell 5.1 probe: data in as base64 JSON, one JSON document out.
#Requires -Version 5.1
[CmdletBinding()]
param([string]$RequestB64 = 'e30=')

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Request = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($RequestB64)) | ConvertFrom-Json
$Result = [ordered]@{ format = 1; errors = @(); probes = @{} }

function Get-ServiceByImage {
    param([string]$Suffix)
    $services = Get-CimInstance -ClassName Win32_Service -ErrorAction SilentlyContinue
    foreach ($svc in $services) {
        if ($svc.PathName -and $svc.PathName.Trim('"').EndsWith($Suffix, [StringComparison]::OrdinalIgnoreCase)) {
            return [ordered]@{ name = $svc.Name; state = $svc.State; start_mode = $svc.StartMode }
        }
    }
    return $null
}

try {
    $installDir = (Get-ItemProperty -Path 'HKLM:\SOFTWARE\Immunet Protect' -Name InstallDir -ErrorAction Stop).InstallDir
} catch {
    $installDir = $null
    $Result.errors += @{ section = 'install'; hresult = $_.Exception.HResult; type = $_.Exception.GetType().FullName }
}

$Result.service = Get-ServiceByImage -Suffix '\sfc.exe'
$psi = New-Object System.Diagnostics.ProcessStartInfo
$psi.FileName = 'curl.exe'
$psi.Arguments = '-sS -v https://example.invalid/'
$psi.UseShellExecute = $false
$psi.RedirectStandardOutput = $true
$psi.RedirectStandardError = $true
$proc = [System.Diagnostics.Process]::Start($psi)
$stdoutTask = $proc.StandardOutput.ReadToEndAsync()
if (-not $proc.WaitForExit(5000)) { try { $proc.Kill() } catch { } }
$Result.probes['curl'] = @{ exit = $proc.ExitCode; stdout = $stdoutTask.Result }

$resp = Invoke-WebRequest -Uri 'https://example.invalid/' -UseBasicParsing -TimeoutSec 5 -ErrorAction SilentlyContinue
$iwrArgs = @{ Uri = 'https://example.invalid/'; UseBasicParsing = $true }
$resp2 = Invoke-WebRequest @iwrArgs
$text = Get-Content -LiteralPath (Join-Path $installDir 'local.xml') -Raw -Encoding UTF8
Set-Content -Path "$env:TEMP\x.txt" -Value 'x' -Encoding ASCII
$items = Get-ChildItem -Path $env:TEMP | Sort-Object -Property Name | Select-Object -First 3
$joined = ($items | ForEach-Object { $_.Name }) -join ','
$json = $Result | ConvertTo-Json -Depth 6 -Compress
$isWin = [Environment]::OSVersion.Platform -eq 'Win32NT'
# Comments may mention Write-Host, curl, $IsWindows, ForEach-Object -Parallel, a && b and x ?? y.
$note = 'strings may too: Write-Host curl $IsWindows -AsHashtable utf8NoBOM'
[Console]::Out.Write($json)
"""


def test_good_realistic_51_script_passes():
    assert pscheck.check_source(GOOD_51_SCRIPT.encode('ascii'), 'good.ps1') == []


@pytest.mark.parametrize('rule, src', [
    # PS100: 7-only syntax and plain syntax errors become ERROR / MISSING nodes
    ('PS100', '$a = $b ? 1 : 2\n'),
    ('PS100', '$a = $null ?? "default"\n'),
    ('PS100', '$a ??= 5\n'),
    ('PS100', '$len = ${name}?.Length\n'),
    ('PS100', 'function f { process { $_ } clean { "bye" } }\n'),
    ('PS100', 'Start-Sleep 1 &\n'),
    ('PS100', 'if ($x) { "unclosed"\n'),
    ('PS100', '$h = @{ a = 1\n'),
    # PS101: pipeline chains
    ('PS101', 'Get-Item C:\\ && "ok"\n'),
    ('PS101', 'Get-Item C:\\ || "failed"\n'),
    # PS200: 7-only commands
    ('PS200', 'Test-Json -Json $s\n'),
    ('PS200', '$names | Join-String -Separator ","\n'),
    ('PS200', 'Get-Error\n'),
    ('PS200', 'Microsoft.PowerShell.Utility\\Join-String\n'),
    # PS201: 7-only parameters
    ('PS201', '1..3 | ForEach-Object -Parallel { $_ }\n'),
    ('PS201', '1..3 | % -Parallel { $_ } -ThrottleLimit 4\n'),
    ('PS201', '$o = $s | ConvertFrom-Json -AsHashtable\n'),
    ('PS201', '$o = $s | ConvertFrom-Json -Depth 10\n'),
    ('PS201', '$o = ConvertFrom-Json -Depth:10 -InputObject $s\n'),
    ('PS201', '$b = Get-Content -Path x.bin -AsByteStream\n'),
    ('PS201', 'Invoke-RestMethod -Uri $u -SkipCertificateCheck\n'),
    ('PS201', 'Invoke-WebRequest -Uri $u -UseBasicParsing -SkipCertificateCheck\n'),
    ('PS201', 'Invoke-WebRequest -Uri $u -UseBasicParsing -SkipHttpErrorCheck\n'),
    # PS202: 7-only encodings
    ('PS202', 'Set-Content -Path x -Value y -Encoding utf8NoBOM\n'),
    ('PS202', "Out-File -FilePath x -Encoding 'utf8NoBOM'\n"),
    ('PS202', 'Set-Content -Path x -Value y -Encoding:utf8BOM\n'),
    # PS203: 7-only automatic variables
    ('PS203', 'if ($IsWindows) { "win" }\n'),
    ('PS203', 'if ($IsLinux) { "linux" }\n'),
    ('PS203', 'if ($IsMacOS) { "mac" }\n'),
    ('PS203', '$PSStyle.OutputRendering = "PlainText"\n'),
    ('PS203', 'if ($global:IsWindows) { 1 }\n'),
    ('PS203', '$s = "running on Linux: $IsLinux"\n'),  # expanded inside a double-quoted string
    # PS204: #Requires 7
    ('PS204', '#Requires -Version 7.2\n$a = 1\n'),
    ('PS204', '#requires -PSEdition Core\n$a = 1\n'),
    # PS300: bare curl / wget
    ('PS300', 'curl https://example.invalid/ -UseBasicParsing\n'),
    ('PS300', 'wget -Uri https://example.invalid/ -UseBasicParsing\n'),
    # PS301: Invoke-WebRequest without -UseBasicParsing
    ('PS301', 'Invoke-WebRequest -Uri https://example.invalid/\n'),
    ('PS301', 'iwr https://example.invalid/\n'),
    ('PS301', '$p = @{ Uri = "x" }\nInvoke-WebRequest @p\n'),
    # PS302: Write-Host
    ('PS302', 'Write-Host "hello"\n'),
    ('PS302', 'Microsoft.PowerShell.Utility\\Write-Host -Object "hello"\n'),
    # PS303: ConvertTo-Json without -Depth
    ('PS303', '$json = $result | ConvertTo-Json -Compress\n'),
    ('PS303', '$json = ConvertTo-Json -InputObject $result\n'),
    # PS400/PS401/PS402: encoding of the file itself
    ('PS400', b'\xef\xbb\xbf$a = 1\n'),
    ('PS401', '$a = "caf\u00e9"\n'),
    ('PS401', '# comment with an en dash \u2013\n'),
    ('PS402', '$a = 1\n'.encode('utf-16-le')),
])
def test_rule_fires(rule, src):
    found = rules(src)
    assert rule in found, f'{rule} not reported for {src!r}; got {found}'


@pytest.mark.parametrize('src', [
    'curl.exe -sS https://example.invalid/\n',
    'Invoke-WebRequest -Uri $u -UseBasicParsing\n',
    'Invoke-WebRequest -Uri $u -UseB\n',
    'Invoke-RestMethod -Uri $u\n',
    '$x = Select-Object -InputObject $a -Skip 1\n',
    '$s = ConvertTo-SecureString -String "x" -AsPlainText -Force\n',
    'Set-Content -Path x -Value y -Encoding UTF8\n',
    '$j = $o | ConvertTo-Json -Depth 5\n',
    '$j = $o | ConvertTo-Json -D 5 -Compress\n',
    '1..3 | ForEach-Object -Process { $_ }\n',
    '# Write-Host curl $IsWindows\n$a = 1\n',
    '$s = "Write-Host && curl -AsHashtable utf8NoBOM"\n',
    "$s = 'ForEach-Object -Parallel ?? ?.'\n",
    '<# block comment: Test-Json, $PSStyle, a ? b : c #>\n$a = 1\n',
    'Write-Output "x"\n',
    '$isWindowsHost = $true\n',
    '#Requires -Version 5.1\n$a = 1\n',
])
def test_clean_code_passes(src):
    assert rules(src) == []


def test_finding_names_file_line_column_and_quotes_line():
    src = '$ok = 1\n$bad = $true\n  Write-Host "x"\n'
    findings = pscheck.check_source(src.encode(), 'scripts/probe.ps1')
    assert len(findings) == 1
    text = findings[0].format()
    assert text.startswith('scripts/probe.ps1:3:3: PS302 ')
    assert 'Write-Host "x"' in text.splitlines()[1]


def test_parse_error_reports_line_and_hint():
    findings = pscheck.check_source(b'$a = 1\n$b = $c ?? 2\n', 'x.ps1')
    assert findings and findings[0].rule == 'PS100'
    assert findings[0].line == 2
    assert '??' in findings[0].message


def test_non_ascii_reports_column():
    findings = pscheck.check_source('$a = 1\n$b = "\u00e9"\n'.encode('utf-8'), 'x.ps1')
    assert [(f.rule, f.line, f.col) for f in findings] == [('PS401', 2, 7)]


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, PSCHECK, *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_cli_fails_loudly_on_bad_script(tmp_path):
    bad = tmp_path / 'bad.ps1'
    bad.write_text('1..3 | ForEach-Object -Parallel { $_ }\nGet-Item x && "ok"\n', encoding='ascii')
    good = tmp_path / 'good.ps1'
    good.write_text(GOOD_51_SCRIPT, encoding='ascii')
    proc = _run(str(good), str(bad))
    assert proc.returncode == 1
    assert f'{bad}:1:23: PS201' in proc.stdout
    assert f'{bad}:2:' in proc.stdout and 'PS101' in proc.stdout
    assert 'FAILED: 2 finding(s) in 2 file(s)' in proc.stdout


def test_cli_passes_on_good_script(tmp_path):
    good = tmp_path / 'good.ps1'
    good.write_text(GOOD_51_SCRIPT, encoding='ascii')
    proc = _run(str(good))
    assert proc.returncode == 0, proc.stdout
    assert '1 file(s) clean' in proc.stdout


def test_cli_without_files_and_missing_file(tmp_path):
    assert _run().returncode == 0
    assert _run(str(tmp_path / 'absent.ps1')).returncode == 2


def test_shipped_scripts_are_clean():
    """Every PowerShell file in the collection passes (the same check `make pscheck` runs)."""
    scripts = []
    for base, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        scripts.extend(os.path.join(base, f) for f in files if f.endswith(('.ps1', '.psm1', '.psd1')))
    problems = [f.format() for path in scripts for f in pscheck.check_file(path)]
    assert problems == []
