# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector for secure_endpoint.tetra, evidence format 1 (docs/evidence.md): the core part.
# Windows PowerShell 5.1. The collector gathers raw evidence and decides nothing: every value is
# interpreted on the controller. Every behaviour it relies on is listed, with its source, in
# docs/windows-assumptions.md (rows W1..Wn are referenced below).
#
# The collector ships as parts (files/tetra_*.ps1). The controller joins the parts of one entry, as
# files/entries.json lists them, into ONE script: this part first (it holds the param block), the
# entry's own part last (its main code). Entries: collect, remediation, file transfer.
# Two ways to run an entry:
# - dot-sourced by the collection's bootstrap (plugins/plugin_utils/_remote.py), which sets
#   $TetraRequest (base64 JSON) and $TetraScript (the joined text); no arguments are passed;
# - from files/tetra_evidence.ps1 (-File, local runs without WinRM) or the LocalSystem task, with
#   -RequestFile req.json [-OutFile evidence.json]; the request file is plain JSON, UTF-8.
# Output: exactly one JSON document, as one string on the pipeline (or in -OutFile).
# This part does no CIM/WMI work and runs no program: the file-transfer entry is this part and
# tetra_transfer.ps1 only.

param([string]$RequestFile, [string]$OutFile)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Started = [DateTime]::UtcNow
$Clock = [Diagnostics.Stopwatch]::StartNew()
$Errors = New-Object System.Collections.ArrayList
$Invariant = [Globalization.CultureInfo]::InvariantCulture
# HRESULTs of IOException for ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION (W7).
$SharingViolations = @(-2147024864, -2147024863)

function ConvertTo-ErrorInfo {
    param($Failure)
    $ex = $Failure
    if ($ex -is [System.Management.Automation.ErrorRecord]) { $ex = $ex.Exception }
    if ($ex -is [System.Management.Automation.MethodInvocationException] -and $ex.InnerException) { $ex = $ex.InnerException }
    if ($ex -is [System.AggregateException] -and $ex.InnerException) { $ex = $ex.InnerException }
    $info = [ordered]@{ type = $ex.GetType().FullName; hresult = $ex.HResult; message = $ex.Message }
    $inner = $ex
    while ($inner.InnerException) {
        $inner = $inner.InnerException
        if ($inner -is [System.ComponentModel.Win32Exception]) { $info.native_error = $inner.NativeErrorCode }
        if ($inner -is [System.Net.Sockets.SocketException]) { $info.code = $inner.ErrorCode }
    }
    if ($ex -is [System.Net.Sockets.SocketException]) { $info.code = $ex.ErrorCode }
    if ($ex -is [System.Net.WebException]) { $info.status = [string]$ex.Status }
    return $info
}

function Add-EvidenceError {
    param([string]$Section, $Failure)
    $info = ConvertTo-ErrorInfo $Failure
    $info.section = $Section
    [void]$Errors.Add($info)
}

function Get-Milliseconds {
    param([Diagnostics.Stopwatch]$Watch)
    return [int]$Watch.Elapsed.TotalMilliseconds
}

function Format-Date {
    param([datetime]$Value)
    # Invariant culture: ':' in a custom format is the culture's time separator (W9).
    return $Value.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [Globalization.CultureInfo]::InvariantCulture)
}

function Read-SharedText {
    param([string]$Path)
    # The connector keeps local.xml/policy.xml open while it writes them: open with FileShare.ReadWrite
    # (W7) and retry once, shortly, on a sharing violation.
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            $stream = [IO.File]::Open($Path, 'Open', 'Read', 'ReadWrite')
            try {
                $reader = New-Object System.IO.StreamReader($stream, (New-Object System.Text.UTF8Encoding($false)), $true)
                return [pscustomobject]@{ text = $reader.ReadToEnd(); attempts = $attempt }
            } finally {
                $stream.Dispose()
            }
        } catch {
            $info = ConvertTo-ErrorInfo $_
            if ($attempt -ge 2 -or $SharingViolations -notcontains $info.hresult) { throw }
            Start-Sleep -Milliseconds 300
        }
    }
}

function Assert-SupportPath {
    param([string]$Path)
    # Only the collection's own support folders may be written, read back or removed.
    $full = [IO.Path]::GetFullPath($Path)
    $prefix = Join-Path (Join-Path $env:SystemRoot 'Temp') 'tetra-support-'
    if (-not $full.StartsWith($prefix, [StringComparison]::OrdinalIgnoreCase)) {
        throw (New-Object System.UnauthorizedAccessException("only paths under $prefix* are allowed"))
    }
    return $full
}

function Get-HostEvidence {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $hostInfo = [ordered]@{
        computer_name = $env:COMPUTERNAME
        os_caption = $null
        os_build = $null
        ps_version = $PSVersionTable.PSVersion.ToString()
        culture = (Get-Culture).Name
        user = $identity.Name
        is_system = $identity.IsSystem
    }
    return $hostInfo
}

function Write-Document {
    param($Document)
    # Non-ASCII escaped as \uXXXX: 5.1's ConvertTo-Json leaves it raw and the console code page
    # would garble it (W6).
    $json = $Document | ConvertTo-Json -Depth 8 -Compress
    $json = [regex]::Replace($json, '[^\x00-\x7F]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
    if ($OutFile) {
        # Written under a temporary name, then renamed: a reader never sees half a document (W14).
        $partial = $OutFile + '.partial'
        [IO.File]::WriteAllText($partial, $json, (New-Object System.Text.UTF8Encoding($false)))
        if (Test-Path -LiteralPath $OutFile) { Remove-Item -LiteralPath $OutFile -Force }
        [IO.File]::Move($partial, $OutFile)
        return
    }
    # One string on the pipeline: powershell.exe writes it to stdout (winrm, ssh), psrp returns it as output.
    $json
}

function New-Document {
    return [ordered]@{ format = 1; action = $null; started = (Format-Date $Started); context = 'user' }
}

function Read-TetraRequest {
    param($Document, [string[]]$Actions, [string[]]$Sections)
    # The request, from the bootstrap (base64 JSON) or a file; $null, with the reason in the errors,
    # when it is unreadable or asks this entry for an action or a section it does not handle.
    try {
        if ($TetraRequest) {
            $request = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($TetraRequest)) | ConvertFrom-Json
        } elseif ($RequestFile) {
            $request = (Read-SharedText $RequestFile).text | ConvertFrom-Json
        } else {
            throw (New-Object System.ArgumentException('no request: set $TetraRequest or pass -RequestFile'))
        }
        $Document.action = $request.action
        if ($Actions -notcontains [string]$request.action) {
            throw (New-Object System.ArgumentException("this entry does not handle the action '$($request.action)'"))
        }
        $foreign = @(@($request.sections) | Where-Object { $_ -and $Sections -notcontains [string]$_ })
        if ($foreign.Count -gt 0) {
            throw (New-Object System.ArgumentException("this entry does not collect the section(s) $($foreign -join ', ')"))
        }
        return $request
    } catch {
        Add-EvidenceError 'request' $_
        return $null
    }
}

function Complete-Document {
    param($Document)
    $Document.errors = $Errors
    $Document.duration_ms = Get-Milliseconds $Clock
    Write-Document $Document
}
