# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tests for tools/pscheck.py: every rule fires on a bad script, good 5.1 code passes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from tests.paths import REPO_ROOT as ROOT

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
    $services = Get-CimInstance -ClassName Win32_Service -OperationTimeoutSec 10 -ErrorAction SilentlyContinue
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
$json
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
    for top in ('plugins', 'files'):
        for base, _dirs, files in os.walk(os.path.join(ROOT, top)):
            scripts.extend(os.path.join(base, f) for f in files if f.endswith(('.ps1', '.psm1', '.psd1')))
    assert len(scripts) >= 9
    problems = [f.format() for path in scripts for f in pscheck.check_file(path)]
    assert problems == []
    assert [f.format() for f in pscheck.check_entries(os.path.join(ROOT, 'files', 'entries.json'))] == []


# -- PS5xx pitfall rules: for each rule a script that must be reported and one that must pass --

CALLBACK_KEEPS_CHAIN = r"""
$callback = {
    param($Sender, $Certificate, $Chain, $PolicyErrors)
    $script:Seen = @{ chain = $Chain; errors = $PolicyErrors }
    return $true
}
$ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, $callback)
"""

CALLBACK_COPIES_CHAIN = r"""
$callback = {
    param($Sender, $Certificate, $Chain, $PolicyErrors)
    $script:Seen = @{
        chain = @($Chain.ChainElements | ForEach-Object { $_.Certificate.RawData })
        status = @($Chain.ChainStatus | ForEach-Object { [string]$_.Status })
        leaf = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($Certificate)
        errors = [string]$PolicyErrors
    }
    return $true
}
$ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, $callback)
"""

PITFALLS = [
    # PS500 [Console] I/O
    ('PS500', '[Console]::Out.Write($json)\n', '$json\n'),
    ('PS500', '[System.Console]::WriteLine("x")\n', 'Write-Output "x"\n'),
    ('PS500', '$line = [Console]::ReadLine()\n', '$line = $input | Select-Object -First 1\n'),
    ('PS500', '$s = [Console]::OpenStandardOutput()\n', '$s = New-Object System.IO.MemoryStream\n'),
    ('PS500', '[Console]::Error.WriteLine("x")\n', 'Write-Error "x"\n'),
    # PS501 culture-dependent dates
    ('PS501', "$s = $Started.ToString('yyyy-MM-ddTHH:mm:ssZ')\n", "$s = $Started.ToString('o')\n"),
    ('PS501', "$s = $d.ToString('yyyy-MM-dd')\n",
     "$s = $d.ToString('yyyy-MM-dd', [Globalization.CultureInfo]::InvariantCulture)\n"),
    ('PS501', '$s = [DateTime]::UtcNow.ToString()\n', "$s = [DateTime]::UtcNow.ToString('u')\n"),
    ('PS501', '$s = $cert.NotAfter.ToString()\n', "$s = $cert.NotAfter.ToUniversalTime().ToString('o')\n"),
    ('PS501', "$s = (Get-Date).ToString('d')\n", "$s = [guid]::NewGuid().ToString('D')\n"),
    ('PS501', "$s = Get-Date -Format 'yyyy-MM-dd HH:mm'\n", '$s = Get-Date -Format o\n'),
    ('PS501', "$s = Get-Date -UFormat '%Y-%m-%d'\n", "$s = (Get-Date).ToUniversalTime().ToString('s')\n"),
    ('PS501', "$s = '{0:yyyy-MM-dd}' -f $d\n", "$s = '{0:X2}-{1:N0}' -f $b, $n\n"),
    # PS502 reads that fail on files another process writes
    ('PS502', '$t = [IO.File]::ReadAllText($p)\n',
     "$fs = [IO.File]::Open($p, 'Open', 'Read', 'ReadWrite')\n$t = (New-Object IO.StreamReader($fs)).ReadToEnd()\n"),
    ('PS502', '$b = [System.IO.File]::ReadAllBytes($p)\n', '$t = Get-Content -LiteralPath $p -Raw\n'),
    ('PS502', '$l = [IO.File]::ReadAllLines($p)\n', "[IO.File]::WriteAllText($p, 'x')\n"),
    ('PS502', "$fs = [IO.File]::Open($p, 'Open', 'Read')\n", "$fs = [IO.File]::Open($p, 'Open', 'Read', 'ReadWrite')\n"),
    # PS503 RunspacePool.Close() while pipelines may still run
    ('PS503', 'function f {\n    $pool = [RunspaceFactory]::CreateRunspacePool(1, 4)\n    $pool.Open()\n    $pool.Close()\n}\n',
     'function f {\n    $pool = [RunspaceFactory]::CreateRunspacePool(1, 4)\n    $pool.Open()\n    [void]$pool.BeginClose($null, $null)\n}\n'),
    ('PS503', '$pool = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspacePool(1, 4)\n$pool.Dispose()\n',
     '$pool = [RunspaceFactory]::CreateRunspacePool(1, 4)\nforeach ($j in $jobs) { [void]$j.shell.BeginStop($null, $null) }\n$pool.Close()\n'),
    ('PS503', '$pool = [RunspaceFactory]::CreateRunspacePool(1, 4)\nfunction g { $j.shell.Stop() }\n$pool.Close()\n',
     '$pool = [RunspaceFactory]::CreateRunspacePool(1, 4)\n$pool.CloseAsync()\n$other.Close()\n'),
    # PS504 Register-ScheduledTask without -Settings
    ('PS504', 'Register-ScheduledTask -TaskName t -Action $a -Principal $p -Force\n',
     'Register-ScheduledTask -TaskName t -Action $a -Principal $p -Settings $s -Force\n'),
    ('PS504', 'Register-ScheduledTask t -Action $a\n', 'Register-ScheduledTask -TaskName t -InputObject $task\n'),
    # PS505 -File in a scheduled task's arguments
    ('PS505', 'New-ScheduledTaskAction -Execute powershell.exe -Argument "-NoProfile -ExecutionPolicy Bypass -File `"$f`""\n',
     'New-ScheduledTaskAction -Execute powershell.exe -Argument "-NoProfile -NonInteractive -EncodedCommand $enc"\n'),
    ('PS505', "New-ScheduledTaskAction -Execute 'powershell.exe' -Argument:'-file C:\\x.ps1'\n",
     "New-ScheduledTaskAction -Execute 'powershell.exe' -Argument '-Command \"& { Get-Item C:\\x.ps1 }\"'\n"),
    # PS506 SYSTEM by name
    ('PS506', "$p = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount\n",
     "$p = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount\n"),
    ('PS506', "$p = New-ScheduledTaskPrincipal -UserId 'NT AUTHORITY\\SYSTEM'\n", '$p = New-ScheduledTaskPrincipal -UserId $env:USERNAME\n'),
    ('PS506', 'Register-ScheduledTask -TaskName t -Action $a -Settings $s -User "NT AUTHORITY\\SYSTEM"\n',
     'Register-ScheduledTask -TaskName t -Action $a -Settings $s -User S-1-5-18\n'),
    # PS507 return @(...)
    ('PS507', 'function f {\n    return @($a | Where-Object { $_ })\n}\n', 'function f {\n    return ,@($a | Where-Object { $_ })\n}\n'),
    ('PS507', 'function f { return @() }\n', 'function f { Write-Output -NoEnumerate @($a) }\n'),
    # PS508 web requests without an explicit proxy
    ('PS508', '$p = {\n    $web = [System.Net.HttpWebRequest]::Create($Url)\n'
     '    if ($ProxyUrl) { $web.Proxy = New-Object System.Net.WebProxy($ProxyUrl) }\n}\n',
     '$p = {\n    $web = [System.Net.HttpWebRequest]::Create($Url)\n    $web.Proxy = New-Object System.Net.WebProxy\n'
     '    if ($ProxyUrl) { $web.Proxy = New-Object System.Net.WebProxy($ProxyUrl) }\n}\n'),
    ('PS508', '$r = [Net.WebRequest]::Create($u)\n$r.Timeout = 5000\n',
     '$r = [Net.WebRequest]::Create($u)\n$r.Proxy = $(if ($ProxyUrl) { New-Object Net.WebProxy($ProxyUrl) } else { New-Object Net.WebProxy })\n'),
    ('PS508', '$code = [Net.WebRequest]::Create($u).GetResponse().StatusCode\n', '$r = [Net.WebRequest]::Create($u)\n$r.Proxy = $null\n'),
    # PS509 X509Chain kept past the validation callback
    ('PS509', CALLBACK_KEEPS_CHAIN, CALLBACK_COPIES_CHAIN),
    ('PS509', '[Net.ServicePointManager]::ServerCertificateValidationCallback = {\n    param($s, $c, $ch, $e)\n    $state.chain = $ch\n    $true\n}\n',
     '[Net.ServicePointManager]::ServerCertificateValidationCallback = {\n    param($s, $c, $ch, $e)\n    $state.status = $ch.ChainStatus\n    $true\n}\n'),
    ('PS509', '$ssl = [System.Net.Security.SslStream]::new($n, $false, {\n    param($s, $Certificate, $Chain, $e)\n    [void]$global:Certs.Add($Certificate)\n'
     '    $true\n})\n',
     '$ssl = [System.Net.Security.SslStream]::new($n, $false, {\n    param($s, $Certificate, $Chain, $e)\n    [void]$global:Certs.Add($Certificate.RawData)\n'
     '    $true\n})\n'),
    ('PS509', '$cb = [System.Net.Security.RemoteCertificateValidationCallback]{\n    param($s, $c, $ch, $e)\n    $script:Leaf = $c\n    $true\n}\n',
     '$cb = [System.Net.Security.RemoteCertificateValidationCallback]{\n    param($s, $c, $ch, $e)\n    $local = $ch\n'
     '    $script:Leaf = [Security.Cryptography.X509Certificates.X509Certificate2]::new($c)\n'
     '    $true\n}\n'),
    # PS510 CIM/WMI without a timeout
    ('PS510', '$os = Get-CimInstance -ClassName Win32_OperatingSystem\n', '$os = Get-CimInstance -ClassName Win32_OperatingSystem -OperationTimeoutSec 10\n'),
    ('PS510', '$svc = gcim Win32_Service\n', '$svc = gcim Win32_Service -OT 10\n'),
    ('PS510', "Invoke-CimMethod -ClassName Win32_Process -MethodName Create -Arguments @{ CommandLine = 'x' }\n",
     "Invoke-CimMethod -ClassName Win32_Process -MethodName Create -Arguments @{ CommandLine = 'x' } -OperationTimeoutSec 30\n"),
    ('PS510', '$os = Get-WmiObject Win32_OperatingSystem\n',
     '$cim = @{ ClassName = "Win32_OperatingSystem"; OperationTimeoutSec = 10 }\n$os = Get-CimInstance @cim\n'),
]


@pytest.mark.parametrize('rule, bad, good', PITFALLS)
def test_pitfall_rule(rule, bad, good):
    found = rules(bad)
    assert rule in found, f'{rule} not reported for {bad!r}; got {found}'
    assert rules(good) == [], f'fixed code {good!r} still reported'


def test_every_pitfall_rule_is_tested_and_documented():
    codes = {r.code for r in pscheck._PITFALL_RULES}
    assert codes == {rule for rule, _bad, _good in PITFALLS}
    for code in codes:
        assert f'\n{code}  ' in pscheck.__doc__, f'{code} is not documented in the module docstring'
        assert 'https://learn.microsoft.com/' in pscheck.__doc__.split(f'\n{code}  ', 1)[1].split('\nPS5', 1)[0]


def test_pitfall_messages_say_the_fix():
    findings = pscheck.check_source(b'$os = Get-WmiObject Win32_OperatingSystem\n[Console]::Out.Write($x)\n', 'x.ps1')
    assert [(f.rule, f.line) for f in findings] == [('PS510', 1), ('PS500', 2)]
    assert 'Get-CimInstance -OperationTimeoutSec' in findings[0].message
    assert 'pipeline' in findings[1].message


@pytest.mark.parametrize('src', [
    "# [Console]::Out.Write($x); [IO.File]::ReadAllText($p); return @($a)\n$a = 1\n",
    "$s = '[Console]::WriteLine(1); Get-WmiObject; $d.ToString(\"yyyy\")'\n",
    "$s = \"New-ScheduledTaskPrincipal -UserId 'SYSTEM' -File x\"\n",
    "$g = [guid]::NewGuid().ToString('N')\n$v = $PSVersionTable.PSVersion.ToString()\n$h = $b.ToString('x2')\n",
    'return ,@($a)\n',
    '$r = [Net.WebRequest]::DefaultWebProxy\n',
])
def test_pitfall_rules_ignore_comments_strings_and_lookalikes(src):
    assert rules(src) == []


def test_allow_comment_with_reason_silences_one_rule_on_its_line():
    src = ('$t = [IO.File]::ReadAllText($p)  # pscheck: allow PS502 our own temp file, nobody else opens it\n'
           '$u = [IO.File]::ReadAllText($q)\n')
    findings = pscheck.check_source(src.encode(), 'x.ps1')
    assert [(f.rule, f.line) for f in findings] == [('PS502', 2)]


def test_allow_comment_lists_several_codes():
    src = "$os = Get-WmiObject Win32_OperatingSystem; $t = [IO.File]::ReadAllText($p)  # pscheck: allow PS510, PS502 lab-only helper\n"
    assert rules(src) == []


@pytest.mark.parametrize('comment', [
    '# pscheck: allow PS502',
    '# pscheck: allow PS502 ',
    '# pscheck: allow PS502 --',
    '# pscheck: allow PS510 some other rule',
])
def test_allow_comment_without_reason_or_for_another_rule_does_not_silence(comment):
    findings = pscheck.check_source(f'$t = [IO.File]::ReadAllText($p)  {comment}\n'.encode(), 'x.ps1')
    assert [f.rule for f in findings] == ['PS502']
    if 'PS502' in comment:
        assert 'needs a reason' in findings[0].message


def test_allow_comment_must_be_on_the_finding_line_and_in_a_comment():
    src = ('# pscheck: allow PS502 reason on the line above\n'
           '$t = [IO.File]::ReadAllText($p)\n'
           '$u = [IO.File]::ReadAllText("# pscheck: allow PS502 inside a string")\n')
    assert rules(src) == ['PS502', 'PS502']


def test_allow_comment_cannot_silence_51_compatibility_rules():
    assert rules('Write-Host "x"  # pscheck: allow PS302 we really want the console\n') == ['PS302']


# -- PS600-PS604 the parts joined per entry ---------------------------------------------------------

CORE = """param([string]$RequestFile)
$Errors = @()
function Write-Document { param($Document) $Document | ConvertTo-Json -Depth 8 -Compress }
"""
TOOLS = """$TaskRunning = 267009
function Invoke-Captured { param($Path) return $Path }
"""
BLOCKS = """$ProbeOne = {
    param($Path)
    Invoke-Captured $Path
}
"""
PROBES = """$ProbeHelpers = @('Invoke-Captured')
function Start-Probe { return $ProbeOne }
"""
MAIN = """Write-Document (Start-Probe)
$state = $TaskRunning
"""


def entries_folder(tmp_path, entries, actions=None, **texts):
    parts = dict({'core.ps1': CORE, 'tools.ps1': TOOLS, 'blocks.ps1': BLOCKS, 'probes.ps1': PROBES, 'main.ps1': MAIN}, **texts)
    for name, text in parts.items():
        if text is not None:
            (tmp_path / name).write_text(text, encoding='ascii')
    manifest = tmp_path / 'entries.json'
    manifest.write_text(json.dumps({'entries': entries, 'actions': actions or {'collect': 'collect'}}), encoding='utf-8')
    return str(manifest)


COMPLETE = ['core.ps1', 'tools.ps1', 'blocks.ps1', 'probes.ps1', 'main.ps1']


def entry_rules(tmp_path, entries, actions=None, **texts):
    return sorted(f.rule for f in pscheck.check_entries(entries_folder(tmp_path, entries, actions, **texts)))


def test_a_complete_entry_passes(tmp_path):
    assert entry_rules(tmp_path, {'collect': COMPLETE}) == []


def test_an_entry_calling_a_function_of_a_part_it_lacks_is_reported(tmp_path):
    # tools.ps1 defines Invoke-Captured (called by the probe block) and $TaskRunning (read by main.ps1).
    assert entry_rules(tmp_path, {'collect': COMPLETE, 'small': ['core.ps1', 'blocks.ps1', 'probes.ps1', 'main.ps1']}) == ['PS600', 'PS601']


def test_a_probe_block_calling_a_function_missing_from_the_helpers_is_reported(tmp_path):
    probes = PROBES.replace("@('Invoke-Captured')", "@('Start-Probe')")
    assert entry_rules(tmp_path, {'collect': COMPLETE}, **{'probes.ps1': probes}) == ['PS602']


def test_a_part_over_the_line_limit_is_reported(tmp_path):
    assert entry_rules(tmp_path, {'collect': COMPLETE}, **{'main.ps1': MAIN + '# filler\n' * 400}) == ['PS603']


@pytest.mark.parametrize('entries, actions', [
    ({'collect': COMPLETE + ['absent.ps1']}, None),
    ({'collect': COMPLETE}, {'collect': 'collect', 'read_file': 'transfer'}),
    ({'collect': COMPLETE[1:2] + COMPLETE[:1] + COMPLETE[2:]}, None),
])
def test_manifest_errors_are_reported(tmp_path, entries, actions):
    assert entry_rules(tmp_path, entries, actions) == ['PS604']


def test_a_part_in_no_entry_is_reported(tmp_path):
    assert entry_rules(tmp_path, {'collect': COMPLETE}, **{'unused.ps1': '$x = 1\n'}) == ['PS604']


def test_the_entries_option_fails_the_run(tmp_path):
    manifest = entries_folder(tmp_path, {'collect': COMPLETE, 'small': ['core.ps1', 'main.ps1']})
    done = subprocess.run([sys.executable, PSCHECK, '--entries', manifest], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and 'PS600' in done.stdout


@pytest.mark.parametrize('literal', ["@'\n# data\n'@", '"one\n# two"', "'q\n#r'"])
def test_a_multi_line_string_in_a_part_is_reported(tmp_path, literal):
    assert entry_rules(tmp_path, {'collect': COMPLETE}, **{'main.ps1': MAIN + '$text = %s\n' % literal}) == ['PS605']
