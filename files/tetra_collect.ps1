# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, collect entry (see tetra_core.ps1): posture, files, system and the network
# probes, as the calling user or as LocalSystem through a one-shot scheduled task.

function Get-SelfText {
    # The joined collect entry as it runs here, set by the bootstrap or by tetra_evidence.ps1.
    if ($TetraScript) { return [string]$TetraScript }
    throw (New-Object System.InvalidOperationException('the script text is not available to hand to the LocalSystem task'))
}

function Write-Utf8File {
    param([string]$Path, [string]$Text)
    [IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.UTF8Encoding($false)))
}

function Invoke-AsSystem {
    param($Request, $Document)
    # The connector runs as LocalSystem: run the network probes there, through a one-shot scheduled
    # task that runs THIS entry (the joined text as shipped) with a request asking for the probes only.
    $record = [ordered]@{ registered = $false; started = $false; finished = $false; stopped = $false; state = $null
        last_result = $null; is_system = $null; duration_ms = 0; error = $null }
    $Document.system_task = $record
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $id = [guid]::NewGuid().ToString('N')
    $work = Join-Path $env:SystemRoot "Temp\tetra-$id"
    $scriptFile = Join-Path $work 'tetra_evidence.ps1'
    $requestFile = Join-Path $work 'request.json'
    $outFile = Join-Path $work 'probes.json'
    $taskName = "secure_endpoint.tetra probe $id"
    $deadline = $Started.AddSeconds([double]$Request.deadline_s - 3)
    $inner = [ordered]@{}
    foreach ($property in $Request.PSObject.Properties) { $inner[$property.Name] = $property.Value }
    $inner.action = 'probes_only'
    $inner.context = 'user'
    $inner.deadline_s = [int][Math]::Floor(($deadline - [DateTime]::UtcNow).TotalSeconds)
    try {
        [void](New-Item -ItemType Directory -Path $work)
        Write-Utf8File $scriptFile (Get-SelfText)
        Write-Utf8File $requestFile ($inner | ConvertTo-Json -Depth 8 -Compress)
        $command = Get-CommandArguments $Request 'system_task' @{ script = $scriptFile; request = $requestFile; output = $outFile }
        $powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
        # -Command, not -File: a Group Policy execution policy (AllSigned) overrides -ExecutionPolicy
        # and applies to script files only (W12). Defaults forbid starting on batteries and run at
        # priority 7 (below normal): explicit settings (W11). LocalSystem by SID, not a localized name.
        $action = New-ScheduledTaskAction -Execute $powershell -Argument $command.arguments
        $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -Priority 4 `
            -ExecutionTimeLimit (New-TimeSpan -Seconds ([Math]::Max(30, [int]$Request.deadline_s)))
        $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
        [void](Register-ScheduledTask -TaskName $taskName -Action $action -Principal $principal -Settings $settings -Force)
        $record.registered = $true
        Start-ScheduledTask -TaskName $taskName
        # A task normally starts within a second; one that has not started after this window never will
        # (battery, policy, service) and the probes run here instead, with the time left.
        $startBy = [DateTime]::UtcNow.AddSeconds([Math]::Min(10, [Math]::Max(3, [int]$Request.deadline_s / 4)))
        $endedAt = $null
        while ([DateTime]::UtcNow -lt $deadline) {
            # probes.json appears by rename, only once complete (W14).
            if (Test-Path -LiteralPath $outFile) { break }
            Get-TaskState $taskName $record
            if (-not $record.started -and [DateTime]::UtcNow -gt $startBy) { break }
            if ($record.started -and $record.state -eq 'Ready' -and $record.last_result -ne $TaskRunning) {
                if (-not $endedAt) { $endedAt = [DateTime]::UtcNow } elseif (([DateTime]::UtcNow - $endedAt).TotalSeconds -gt 2) { break }
            }
            Start-Sleep -Milliseconds 500
        }
        if (Test-Path -LiteralPath $outFile) {
            $answer = (Read-SharedText $outFile).text | ConvertFrom-Json
            $record.started = $true
            $record.finished = $true
            $record.is_system = $answer.host.is_system
            foreach ($failure in @($answer.errors)) { if ($failure) { [void]$Errors.Add($failure) } }
            return $answer.probes
        }
        Get-TaskState $taskName $record
        if ($record.state -eq 'Running') {
            # Stop before unregistering: Unregister-ScheduledTask leaves a running instance running (W13).
            Stop-ScheduledTask -TaskName $taskName
            $record.stopped = $true
        }
        return $null
    } catch {
        $record.error = ConvertTo-ErrorInfo $_
        return $null
    } finally {
        if ($record.registered) {
            try { Unregister-ScheduledTask -TaskName $taskName -Confirm:$false } catch { Add-EvidenceError 'system_task' $_ }
        }
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
        $record.duration_ms = Get-Milliseconds $watch
    }
}

function Get-NetworkEvidence {
    param($Document, $Request)
    if (-not $Request.proxy -and $Document.files) {
        $Request | Add-Member -NotePropertyName proxy -NotePropertyValue (Find-ConfiguredProxy $Document.files) -Force
    }
    $probes = $null
    if ($Request.context -eq 'system') {
        $probes = Invoke-AsSystem $Request $Document
        if ($probes) {
            $Document.context = 'system'
        } elseif ($Document.system_task.started) {
            # It started and did not finish: no time is left to run them here.
            $Document.context = 'system'
            $failure = New-Object System.TimeoutException('the LocalSystem task did not finish before the deadline')
            Add-EvidenceError 'system_task' $failure
            $probes = New-NotRunProbes $Request (ConvertTo-ErrorInfo $failure)
        } else {
            $failure = New-Object System.InvalidOperationException('the LocalSystem task did not start; probes ran as the calling user')
            if ($Document.system_task.error) { $failure = New-Object System.InvalidOperationException($Document.system_task.error.message) }
            Add-EvidenceError 'context' $failure
        }
    }
    if (-not $probes) { $probes = Invoke-NetworkProbes $Request }
    return $probes
}

# ---- main of the collect entry: one try/catch per section, so one failure never loses the others ----

$Document = New-Document
$Request = Read-TetraRequest $Document @('collect', 'probes_only') @('install', 'posture', 'files', 'system', 'dns', 'tls', 'curl', 'http', 'roots', 'proxy')
try { $Document.host = Get-HostEvidence; Add-OsEvidence $Document.host } catch { $Document.host = $null; Add-EvidenceError 'host' $_ }
if ($Request -and $Request.action -eq 'probes_only') {
    # The LocalSystem task's run (Invoke-AsSystem): the network probes only.
    try { $Document.probes = Invoke-NetworkProbes $Request } catch { Add-EvidenceError 'probes' $_ }
} elseif ($Request) {
    Add-LocalSections $Document $Request (Get-ConnectorInstall)
    if (@('dns', 'tls', 'curl', 'http', 'roots', 'proxy') | Where-Object { @($Request.sections) -contains $_ }) {
        try { $Document.probes = Get-NetworkEvidence $Document $Request } catch { $Document.probes = $null; Add-EvidenceError 'probes' $_ }
    }
}
Complete-Document $Document
