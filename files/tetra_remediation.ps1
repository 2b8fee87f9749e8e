# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, remediation entry (see tetra_core.ps1): sfc.exe -forceupdate and the support
# bundle's start and finish (debug logging, packet capture, ipsupporttool), each start armed with its
# own end on the endpoint (a one-shot LocalSystem safety-net task).

# The capture tools: their program under %SystemRoot%, the request's command names for start and stop,
# and how long each may take (seconds).
$CaptureTools = @{
    pktmon = @{ program = 'System32\pktmon.exe'; start = 'pktmon_start'; stop = 'pktmon_stop'; start_s = 30; stop_s = 60 }
    netsh = @{ program = 'System32\netsh.exe'; start = 'netsh_trace_start'; stop = 'netsh_trace_stop'; start_s = 60; stop_s = 120 }
}

function Invoke-ForceUpdate {
    param($Request, $Sfc)
    $run = [ordered]@{ ran = $false; command = $null; exit_code = $null; duration_ms = 0; encoding = $null; refused = $null }
    $run.refused = Get-CiscoSfcRefusal $Sfc
    if ($run.refused) { return $run }
    $command = Get-CommandArguments $Request 'sfc_forceupdate' $null
    $run.command = '"{0}" {1}' -f $Sfc.path, $command.arguments
    $captured = Invoke-Captured $Sfc.path $command 60
    $run.ran = $true
    $run.exit_code = $captured.exit_code
    $run.duration_ms = $captured.duration_ms
    $run.encoding = $captured.encoding
    return $run
}

function Get-SafetyNetPlan {
    param($Request)
    # The request's safety_net (built by the controller, _remediation.safety_net); a request without one
    # still gets a safety net, with defaults, so nothing ever starts without its own end (W29).
    $net = $Request.safety_net
    $capture = [string]$Request.capture
    if ($net) {
        $task = [string]$net.task
        $delay = [int]$net.delay_s
        $limit = [int]$net.time_limit_s
        $stop = @($net.stop | ForEach-Object { [string]$_ })
    } else {
        $leaf = (Split-Path -Path ([string]$Request.work_dir) -Leaf) -replace '^tetra-support-', ''
        $suffix = ($leaf -replace '[^0-9A-Za-z-]', '-')
        if ($suffix.Length -gt 64) { $suffix = $suffix.Substring(0, 64) }
        if (-not $suffix) { $suffix = 'run' }
        $task = 'secure_endpoint.tetra support ' + $suffix
        $delay = 3600 + 2 * [int]$Request.deadline_s
        $limit = 600
        $stop = @()
        if ($CaptureTools.ContainsKey($capture)) { $stop += $CaptureTools[$capture].stop }
        $stop += 'sfc_log_stop'
    }
    # Whole-value checks (\z, W28): the name is a task name, never a folder path or a wildcard.
    if ($task -notmatch '^secure_endpoint\.tetra support [0-9A-Za-z-]{1,64}\z') { throw (New-Object System.ArgumentException("unsafe safety-net task name: $task")) }
    if ($delay -lt 60 -or $delay -gt 172800) { throw (New-Object System.ArgumentException("safety-net delay out of bounds: $delay")) }
    if ($limit -lt 60 -or $limit -gt 3600) { throw (New-Object System.ArgumentException("safety-net time limit out of bounds: $limit")) }
    return [pscustomobject]@{ task = $task; delay_s = $delay; time_limit_s = $limit; stop = $stop }
}

function Get-SafetyNetSteps {
    param($Request, $Sfc, $Plan)
    # Each stop command of the plan, by its request name, with the program the script itself resolves:
    # System32 tools by full path, sfc.exe in the connector's folder (checked Cisco's by the caller).
    $steps = New-Object System.Collections.ArrayList
    foreach ($name in $Plan.stop) {
        $tool = @($CaptureTools.Values | Where-Object { $_.stop -eq $name })
        if ($tool.Count -gt 0) { $path = Join-Path $env:SystemRoot $tool[0].program }
        elseif ($name -eq 'sfc_log_stop') { $path = $Sfc.path }
        else { throw (New-Object System.ArgumentException("not a stop command: $name")) }
        $command = Get-CommandArguments $Request $name $null
        [void]$steps.Add([pscustomobject]@{ command = $name; path = $path; arguments = $command.arguments })
    }
    return ,$steps.ToArray()
}

function Register-SafetyNet {
    param($Request, $Sfc)
    # The endpoint's own end of what support_start starts: a one-shot LocalSystem task at start + wait +
    # margin that runs the stop commands, so a controller that never comes back leaves nothing running.
    $record = [ordered]@{ task = $null; registered = $false; armed_at = $null; fires_at = $null; delay_s = $null; time_limit_s = $null
        actions = (New-Object System.Collections.ArrayList); error = $null }
    try {
        $plan = Get-SafetyNetPlan $Request
        $record.task = $plan.task
        $record.delay_s = $plan.delay_s
        $record.time_limit_s = $plan.time_limit_s
        $actions = @()
        foreach ($step in (Get-SafetyNetSteps $Request $Sfc $plan)) {
            # Actions run one after another in this order: the capture's stop first (System32), then sfc.exe -l stop (W29).
            $actions += New-ScheduledTaskAction -Execute $step.path -Argument $step.arguments
            [void]$record.actions.Add([ordered]@{ command = $step.command; path = $step.path; arguments = $step.arguments })
        }
        # Local time: a trigger's StartBoundary/EndBoundary without an offset are local (W30).
        $now = [DateTime]::Now
        $fires = $now.AddSeconds($plan.delay_s)
        $trigger = New-ScheduledTaskTrigger -Once -At $fires
        # An end boundary lets the task expire, then delete itself (DeleteExpiredTaskAfter); a day covers a
        # machine asleep at the trigger time (StartWhenAvailable runs it on wake-up).
        $trigger.EndBoundary = $fires.AddDays(1).ToString('s', $Invariant)
        $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable -Priority 4 `
            -ExecutionTimeLimit (New-TimeSpan -Seconds $plan.time_limit_s) -DeleteExpiredTaskAfter (New-TimeSpan -Hours 1)
        $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
        [void](Register-ScheduledTask -TaskName $plan.task -Action $actions -Trigger $trigger -Principal $principal -Settings $settings -Force)
        $record.registered = $true
        $record.armed_at = Format-Date $now
        $record.fires_at = Format-Date $fires
    } catch {
        $record.error = ConvertTo-ErrorInfo $_
    }
    return $record
}

function Remove-SafetyNet {
    param($Request)
    # A normal finish removes the task once everything is stopped. A task already running its stop
    # commands is left to finish them: Unregister-ScheduledTask does not stop a running instance (W13).
    $record = [ordered]@{ task = $null; existed = $false; fired = $false; state = $null; last_result = $null; removed = $false; error = $null }
    try {
        $plan = Get-SafetyNetPlan $Request
        $record.task = $plan.task
        $found = @(Get-ScheduledTask -TaskName $plan.task -ErrorAction SilentlyContinue)
        if ($found.Count -gt 0) {
            $record.existed = $true
            $state = @{ started = $false; state = $null; last_result = $null }
            Get-TaskState $plan.task $state
            $record.fired = [bool]$state.started
            $record.state = $state.state
            $record.last_result = $state.last_result
            Unregister-ScheduledTask -TaskName $plan.task -Confirm:$false
        }
        $record.removed = (@(Get-ScheduledTask -TaskName $plan.task -ErrorAction SilentlyContinue).Count -eq 0)
    } catch {
        $record.error = ConvertTo-ErrorInfo $_
    }
    return $record
}

function Invoke-SupportStep {
    param($Request, $Sfc)
    $support = [ordered]@{ work_dir = $Request.work_dir; refused = $null }
    $support.refused = Get-CiscoSfcRefusal $Sfc
    if ($support.refused) { return $support }
    $work = Assert-PlaceholderValue (Assert-SupportPath $Request.work_dir)
    $values = @{ work_dir = $work }
    if ($Request.action -eq 'support_start') {
        $support.rolled_back = $null
        $maxMb = [int]$Request.capture_max_mb
        $capturing = $CaptureTools.ContainsKey([string]$Request.capture)
        if ($capturing -and ($maxMb -lt 1 -or $maxMb -gt 4096)) {
            # A capture always has a size limit (and the safety net is its time limit, W31).
            throw (New-Object System.ArgumentException("capture_max_mb out of bounds: $maxMb"))
        }
        # The safety net first: nothing starts unless its end is armed on this machine (W29).
        $support.safety_net = Register-SafetyNet $Request $Sfc
        if (-not $support.safety_net.registered) { $support.refused = 'safety_net_failed'; return $support }
        $done = @{ logging = $false; capture = $false }
        try {
            [void](New-Item -ItemType Directory -Path $work -Force)
            if (-not (Test-Path -LiteralPath $work -PathType Container)) { throw (New-Object System.IO.DirectoryNotFoundException("cannot create $work")) }
            $done.logging = $true
            $support.debug_logging = Invoke-Tool $Request $Sfc.path 'sfc_log_start' 30 $null
            $done.capture = $capturing
            $support.capture = Start-Capture $Request $values
            if ($done.capture) {
                $support.capture.max_mb = $maxMb
                $support.capture.stop_by = $support.safety_net.fires_at
            }
            $support.forceupdate = Invoke-ForceUpdate $Request $Sfc
        } catch {
            # Undo what already started, so nothing keeps logging or capturing after a failure.
            Add-EvidenceError 'support' $_
            $support.rolled_back = [ordered]@{ capture = $null; debug_logging = $null; safety_net = $null }
            if ($done.capture) { $support.rolled_back.capture = Stop-Capture $Request }
            if ($done.logging) { $support.rolled_back.debug_logging = Invoke-Tool $Request $Sfc.path 'sfc_log_stop' 30 $null }
            $support.rolled_back.safety_net = Remove-SafetyNet $Request
        }
        return $support
    }
    try {
        $tool = Join-Path (Split-Path -Path $Sfc.path -Parent) 'ipsupporttool.exe'
        # Leave time inside the deadline for stopping the capture and debug logging afterwards.
        $tool = $CaptureTools[[string]$Request.capture]
        $stopBudget = $(if ($tool) { $tool.stop_s } else { 0 })
        $bundleSeconds = [Math]::Max(30, [int]$Request.deadline_s - 20 - 30 - $stopBudget)
        $support.bundle = Invoke-Tool $Request $tool 'ipsupporttool' $bundleSeconds $values
    } finally {
        $support.capture = Stop-Capture $Request
        $support.debug_logging = Invoke-Tool $Request $Sfc.path 'sfc_log_stop' 30 $null
        # Last: the safety net stays armed until everything it would stop is stopped.
        $support.safety_net = Remove-SafetyNet $Request
    }
    $files = New-Object System.Collections.ArrayList
    foreach ($item in @(Get-ChildItem -LiteralPath $work -File)) {
        [void]$files.Add([ordered]@{ path = $item.FullName; size = $item.Length; sha256 = (Get-FileHash -LiteralPath $item.FullName -Algorithm SHA256).Hash })
    }
    $support.files = $files
    return $support
}

function Invoke-CaptureStep {
    param($Request, [string]$Step, [hashtable]$Values)
    # The request's capture tool, start or stop; $null when the request asks for no capture.
    $tool = $CaptureTools[[string]$Request.capture]
    if (-not $tool) { return $null }
    $run = Invoke-Tool $Request (Join-Path $env:SystemRoot $tool.program) $tool[$Step] $tool[$Step + '_s'] $Values
    return [ordered]@{ tool = $Request.capture; exit_code = $run.exit_code; output = $run.stdout; encoding = $run.encoding; error = $run.error }
}

function Start-Capture {
    param($Request, [hashtable]$Values)
    $capture = Invoke-CaptureStep $Request 'start' $Values
    if (-not $capture) { return [ordered]@{ tool = 'none'; started = $false } }
    $capture.Insert(1, 'file', (Join-Path $Values.work_dir 'capture.etl'))
    return $capture
}

function Stop-Capture {
    param($Request)
    $capture = Invoke-CaptureStep $Request 'stop' $null
    if (-not $capture) { return [ordered]@{ tool = 'none'; stopped = $false } }
    return $capture
}

# ---- main of the remediation entry ----

$Document = New-Document
$Request = Read-TetraRequest $Document @('forceupdate', 'support_start', 'support_finish') @('install', 'posture', 'files', 'system')
try { $Document.host = Get-HostEvidence; Add-OsEvidence $Document.host } catch { $Document.host = $null; Add-EvidenceError 'host' $_ }
if ($Request) {
    $Install = Get-ConnectorInstall
    if (@($Request.sections) -contains 'install') { $Document.install = $Install.evidence }
    if ($Request.action -eq 'forceupdate') {
        try { $Document.forceupdate = Invoke-ForceUpdate $Request $Install.sfc } catch { $Document.forceupdate = $null; Add-EvidenceError 'forceupdate' $_ }
    } else {
        try { $Document.support = Invoke-SupportStep $Request $Install.sfc } catch { Add-EvidenceError 'support' $_ }
    }
    Add-LocalSections $Document $Request $Install
}
Complete-Document $Document
