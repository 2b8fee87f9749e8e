# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, tools part (collect and remediation entries; see tetra_core.ps1): running the
# programs the controller built command lines for, and reading the connector's installation.
# Command lines of child processes come from the request (built in Python, _request.py); this part
# only fills {placeholders} with values it checked (Assert-PlaceholderValue).

# Task Scheduler: SCHED_S_TASK_HAS_NOT_RUN, SCHED_S_TASK_RUNNING (W13).
$TaskNeverRan = 267011
$TaskRunning = 267009

function Get-TextEncoding {
    param([string]$Name)
    # Child processes write bytes; .NET decodes redirected output with the console's code page
    # unless told (W5). curl.exe and AmpCLI write UTF-8; netsh and other console tools the OEM code page.
    if ($Name -eq 'utf-8') { return (New-Object System.Text.UTF8Encoding($false)) }
    return [Text.Encoding]::GetEncoding([Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage)
}

function Assert-PlaceholderValue {
    param([string]$Value)
    # Placeholders sit inside a double-quoted argument (and, for the task, a single-quoted
    # PowerShell string): a value without quotes and without a trailing backslash cannot change
    # how CommandLineToArgvW splits the line (W16).
    # \z, not $: in .NET '$' also matches before a final newline (W28).
    if (-not $Value -or $Value -notmatch '^[A-Za-z0-9 :\\._()-]+\z' -or $Value.EndsWith('\')) {
        throw (New-Object System.ArgumentException("unsafe placeholder value: $Value"))
    }
    return $Value
}

function Get-CommandArguments {
    param($Request, [string]$Name, [hashtable]$Values)
    $spec = $null
    if ($Request.commands) { $spec = $Request.commands.$Name }
    if (-not $spec) { throw (New-Object System.ArgumentException("the request has no command line for $Name")) }
    $arguments = [string]$spec.arguments
    if ($Values) {
        foreach ($key in $Values.Keys) { $arguments = $arguments.Replace('{' + $key + '}', (Assert-PlaceholderValue $Values[$key])) }
    }
    return [pscustomobject]@{ arguments = $arguments; encoding = [string]$spec.encoding }
}

function Invoke-Captured {
    param([string]$Path, $Command, [int]$TimeoutSeconds)
    $result = [ordered]@{ path = $Path; found = (Test-Path -LiteralPath $Path -PathType Leaf); exit_code = $null
        stdout = $null; stderr = $null; timed_out = $false; duration_ms = 0; encoding = $null; error = $null }
    if (-not $result.found) { return $result }
    if ($null -eq $Command) {
        # Never run a tool without the command line the controller built for it.
        $result.error = [ordered]@{ type = 'System.ArgumentException'; hresult = -2147024809; message = 'the request has no command line for this tool' }
        return $result
    }
    $watch = [Diagnostics.Stopwatch]::StartNew()
    try {
        $encoding = Get-TextEncoding $Command.encoding
        $result.encoding = $encoding.WebName
        $psi = New-Object System.Diagnostics.ProcessStartInfo
        $psi.FileName = $Path
        # Verbatim from the request: quoted in Python for CommandLineToArgvW (W15).
        $psi.Arguments = $Command.arguments
        $psi.UseShellExecute = $false
        $psi.CreateNoWindow = $true
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.StandardOutputEncoding = $encoding
        $psi.StandardErrorEncoding = $encoding
        $proc = [Diagnostics.Process]::Start($psi)
        $out = $proc.StandardOutput.ReadToEndAsync()
        $err = $proc.StandardError.ReadToEndAsync()
        if ($proc.WaitForExit($TimeoutSeconds * 1000)) {
            $proc.WaitForExit()
            $result.exit_code = $proc.ExitCode
        } else {
            $result.timed_out = $true
            try { $proc.Kill() } catch { }
        }
        if ($out.Wait(2000)) { $result.stdout = $out.Result }
        if ($err.Wait(2000)) { $result.stderr = $err.Result }
    } catch {
        $result.error = ConvertTo-ErrorInfo $_
    }
    $result.duration_ms = Get-Milliseconds $watch
    return $result
}

function Invoke-Tool {
    param($Request, [string]$Path, [string]$Name, [int]$TimeoutSeconds, [hashtable]$Values)
    # A process record also when the request lacks the command line: its error says so.
    $command = $null
    try { $command = Get-CommandArguments $Request $Name $Values } catch { Add-EvidenceError $Name $_ }
    return (Invoke-Captured $Path $command $TimeoutSeconds)
}

function Get-RegistryValue {
    param([string]$Path, [string]$Name)
    try { return (Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction Stop).$Name } catch { return $null }
}

function Get-InstallEvidence {
    $base = 'HKLM:\SOFTWARE\Immunet Protect'
    $dir = Get-RegistryValue $base 'InstallDir'
    $versions = @()
    if ($dir -and (Test-Path -LiteralPath $dir)) {
        $versions = @(Get-ChildItem -LiteralPath $dir -Directory | Where-Object { $_.Name -match '^[0-9]+(\.[0-9]+)+$' } | ForEach-Object { $_.Name })
    }
    $service = $null
    $found = @(Get-CimInstance -ClassName Win32_Service -OperationTimeoutSec 20 | Where-Object { $_.PathName -match '\\sfc\.exe"?\s*$' })
    if ($found.Count -gt 0) {
        $service = [ordered]@{ name = $found[0].Name; image_path = $found[0].PathName; state = $found[0].State; start_type = $found[0].StartMode }
    }
    $uninstall = 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\Immunet Protect'
    return [ordered]@{
        install_dir = $dir
        version_dirs = $versions
        service = $service
        display_version = Get-RegistryValue $uninstall 'DisplayVersion'
        sfc = $null
        reboot_pending = (Test-Path -LiteralPath "$base\Reboot")
        isolated = ((Test-Path -LiteralPath "$base\unlock_code") -or ($null -ne (Get-RegistryValue $base 'unlock_code')))
    }
}

function Get-ActiveFolder {
    param($Install)
    # The connector's own folder: where the service runs from, else the highest version holding sfc.exe.
    if (-not $Install) { return $null }
    if ($Install.service) {
        $image = $Install.service.image_path.Trim('"', ' ')
        $folder = Split-Path -Path $image -Parent
        if (Test-Path -LiteralPath $folder) { return $folder }
    }
    if (-not $Install.install_dir) { return $null }
    $candidates = @($Install.version_dirs | Where-Object { Test-Path -LiteralPath (Join-Path (Join-Path $Install.install_dir $_) 'sfc.exe') })
    if ($candidates.Count -eq 0) { return $null }
    $highest = $candidates | Sort-Object -Property { [version]$_ } | Select-Object -Last 1
    return (Join-Path $Install.install_dir $highest)
}

function Get-SfcEvidence {
    param([string]$Folder)
    if (-not $Folder) { return $null }
    $path = Join-Path $Folder 'sfc.exe'
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { return [ordered]@{ path = $path; company = $null; file_version = $null } }
    $info = (Get-Item -LiteralPath $path).VersionInfo
    return [ordered]@{ path = $path; company = $info.CompanyName; file_version = $info.FileVersion }
}

function Get-TaskState {
    param([string]$TaskName, $Record)
    try {
        $task = Get-ScheduledTask -TaskName $TaskName
        $info = $task | Get-ScheduledTaskInfo
        $Record.state = [string]$task.State
        $Record.last_result = [int64]$info.LastTaskResult
        if ($Record.state -eq 'Running' -or ($Record.last_result -ne $TaskNeverRan -and $null -ne $info.LastRunTime -and $info.LastRunTime.Year -gt 2000)) {
            $Record.started = $true
        }
    } catch {
        $Record.state_error = ConvertTo-ErrorInfo $_
    }
}

function Get-CiscoSfcRefusal {
    param($Sfc)
    # Never run a bare or foreign sfc.exe: Windows' System File Checker has the same name.
    if (-not $Sfc -or -not $Sfc.company) { return 'sfc_missing' }
    if ($Sfc.company -notmatch 'Cisco') { return 'sfc_not_cisco' }
    return $null
}

function Get-ConnectorInstall {
    # The connector's installation and its active folder; $null values (and an error) when unreadable.
    $install = [pscustomobject]@{ evidence = $null; folder = $null; sfc = $null }
    try {
        $install.evidence = Get-InstallEvidence
        $install.folder = Get-ActiveFolder $install.evidence
        $install.evidence.sfc = Get-SfcEvidence $install.folder
        $install.sfc = $install.evidence.sfc
    } catch {
        Add-EvidenceError 'install' $_
    }
    return $install
}

function Add-OsEvidence {
    param($HostInfo)
    try {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem -OperationTimeoutSec 15
        $HostInfo.os_caption = $os.Caption
        $HostInfo.os_build = $os.Version
    } catch {
        Add-EvidenceError 'host' $_
    }
}
