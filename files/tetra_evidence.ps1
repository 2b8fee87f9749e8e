# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector for secure_endpoint.tetra, evidence format 1 (docs/evidence.md).
# Windows PowerShell 5.1. It gathers raw evidence and decides nothing: every value is
# interpreted on the controller. The request arrives as base64 JSON in $TetraRequest.
# Output: exactly one JSON document, as one string on the pipeline.

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Request = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($TetraRequest)) | ConvertFrom-Json
$Started = [DateTime]::UtcNow
$Clock = [Diagnostics.Stopwatch]::StartNew()
$Errors = New-Object System.Collections.ArrayList

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

function Invoke-Captured {
    param([string]$Path, [string]$Arguments, [int]$TimeoutSeconds)
    $result = [ordered]@{ path = $Path; found = (Test-Path -LiteralPath $Path -PathType Leaf); exit_code = $null
        stdout = $null; stderr = $null; timed_out = $false; duration_ms = 0; error = $null }
    if (-not $result.found) { return $result }
    $watch = [Diagnostics.Stopwatch]::StartNew()
    try {
        $psi = New-Object System.Diagnostics.ProcessStartInfo
        $psi.FileName = $Path
        $psi.Arguments = $Arguments
        $psi.UseShellExecute = $false
        $psi.CreateNoWindow = $true
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
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
    $found = @(Get-CimInstance -ClassName Win32_Service | Where-Object { $_.PathName -match '\\sfc\.exe"?\s*$' })
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

function Read-TextFile {
    param([string]$Path)
    $file = [ordered]@{ path = $Path; readable = $false; text = $null; error = $null }
    if (-not $Path) { return $file }
    try {
        $file.text = [IO.File]::ReadAllText($Path)
        $file.readable = $true
    } catch {
        $file.error = ConvertTo-ErrorInfo $_
        Add-EvidenceError (Split-Path -Path $Path -Leaf) $_
    }
    return $file
}

function Get-HostEvidence {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    return [ordered]@{
        computer_name = $env:COMPUTERNAME
        os_caption = $os.Caption
        os_build = $os.Version
        ps_version = $PSVersionTable.PSVersion.ToString()
        culture = (Get-Culture).Name
        user = $identity.Name
        is_system = $identity.IsSystem
    }
}

function Get-SystemEvidence {
    $netsh = Invoke-Captured (Join-Path $env:SystemRoot 'System32\netsh.exe') 'winhttp show proxy' 10
    $curl = Join-Path $env:SystemRoot 'System32\curl.exe'
    $servers = @()
    try { $servers = @(Get-DnsClientServerAddress -AddressFamily IPv4 | ForEach-Object { $_.ServerAddresses }) } catch { Add-EvidenceError 'system' $_ }
    return [ordered]@{
        winhttp_proxy = $netsh.stdout
        curl_path = $(if (Test-Path -LiteralPath $curl) { $curl } else { $null })
        dns_servers = $servers
        pac_url = Get-RegistryValue 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Internet Settings' 'AutoConfigURL'
    }
}

# ---- network probes: each runs in its own runspace, where the helpers above are exported ----

$ProbeDns = {
    param([string]$Name, [int]$TimeoutSeconds)
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $probe = [ordered]@{ name = $Name; addresses = @(); duration_ms = 0; timed_out = $false; error = $null }
    try {
        $task = [System.Net.Dns]::GetHostAddressesAsync($Name)
        if ($task.Wait($TimeoutSeconds * 1000)) {
            $probe.addresses = @($task.Result | ForEach-Object { $_.IPAddressToString })
        } else {
            $probe.timed_out = $true
        }
    } catch {
        $probe.error = ConvertTo-ErrorInfo $_
    }
    $probe.duration_ms = Get-Milliseconds $watch
    return $probe
}

$ProbeTls = {
    param([string]$HostName, [int]$Port, [int]$ConnectSeconds, [int]$TlsSeconds)
    $probe = [ordered]@{ host = $HostName; port = $Port; connect = $null; handshake = $null; policy_errors = $null; chain = @(); chain_status = @() }
    $client = New-Object System.Net.Sockets.TcpClient
    $probe.connect = Connect-Tcp $client $HostName $Port $ConnectSeconds
    if (-not $probe.connect.ok) { $client.Close(); return $probe }
    $script:Seen = $null
    $callback = {
        param($Sender, $Certificate, $Chain, $PolicyErrors)
        $script:Seen = @{ chain = $Chain; errors = $PolicyErrors }
        return ($PolicyErrors -eq [System.Net.Security.SslPolicyErrors]::None)
    }
    $client.ReceiveTimeout = $TlsSeconds * 1000
    $client.SendTimeout = $TlsSeconds * 1000
    $ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, $callback)
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $handshake = [ordered]@{ ok = $false; protocol = $null; duration_ms = 0; timed_out = $false; error = $null }
    try {
        # Revocation checking on, as the connector does.
        $ssl.AuthenticateAsClient($HostName, $null, [System.Security.Authentication.SslProtocols]::Tls12, $true)
        $handshake.ok = $true
        $handshake.protocol = [string]$ssl.SslProtocol
    } catch {
        $handshake.error = ConvertTo-ErrorInfo $_
        $handshake.timed_out = ($handshake.error.type -eq 'System.IO.IOException' -and $watch.Elapsed.TotalSeconds -ge $TlsSeconds)
    }
    $handshake.duration_ms = Get-Milliseconds $watch
    $probe.handshake = $handshake
    if ($script:Seen) {
        $probe.policy_errors = [string]$script:Seen.errors
        $probe.chain_status = @($script:Seen.chain.ChainStatus | ForEach-Object { [string]$_.Status })
        $probe.chain = @($script:Seen.chain.ChainElements | ForEach-Object { ConvertTo-CertificateInfo $_.Certificate })
    }
    $ssl.Dispose()
    $client.Close()
    return $probe
}

$ProbeProcess = {
    param([string]$Path, [string]$Arguments, [int]$TimeoutSeconds)
    # curl.exe -v writes its trace to stderr: keep it first, as a console shows it.
    $run = Invoke-Captured $Path $Arguments $TimeoutSeconds
    return [ordered]@{ path = $run.path; found = $run.found; exit_code = $run.exit_code; output = ('' + $run.stderr + $run.stdout)
        timed_out = $run.timed_out; duration_ms = $run.duration_ms }
}

$ProbeHttp = {
    param([string]$Url, [int]$TimeoutSeconds, [string]$ProxyUrl)
    $probe = [ordered]@{ url = $Url; status = $null; duration_ms = 0; timed_out = $false; via_proxy = $null; error = $null }
    $watch = [Diagnostics.Stopwatch]::StartNew()
    try {
        $web = [System.Net.HttpWebRequest]::Create($Url)
        $web.Method = 'GET'
        $web.Timeout = $TimeoutSeconds * 1000
        $web.AllowAutoRedirect = $false
        if ($ProxyUrl) {
            $web.Proxy = New-Object System.Net.WebProxy($ProxyUrl)
            $probe.via_proxy = $ProxyUrl
        }
        $response = $web.GetResponse()
        $probe.status = [int]$response.StatusCode
        $response.Close()
    } catch {
        $probe.error = ConvertTo-ErrorInfo $_
        $probe.timed_out = ($probe.error.status -eq 'Timeout')
        $web = $_.Exception.InnerException
        if ($web -is [System.Net.WebException] -and $web.Response) { $probe.status = [int]$web.Response.StatusCode }
    }
    $probe.duration_ms = Get-Milliseconds $watch
    return $probe
}

$ProbeProxy = {
    param([string]$Server, [int]$Port, [string]$Target, [int]$TimeoutSeconds, [string]$Source)
    # Ask the proxy for a tunnel the way the connector does, and keep its first answer line.
    $probe = [ordered]@{ server = $Server; port = $Port; source = $Source; connect = $null; connect_status = $null; status_line = $null }
    $client = New-Object System.Net.Sockets.TcpClient
    $probe.connect = Connect-Tcp $client $Server $Port $TimeoutSeconds
    if ($probe.connect.ok) {
        try {
            $client.ReceiveTimeout = $TimeoutSeconds * 1000
            $stream = $client.GetStream()
            $bytes = [Text.Encoding]::ASCII.GetBytes("CONNECT ${Target}:443 HTTP/1.1`r`nHost: ${Target}:443`r`n`r`n")
            $stream.Write($bytes, 0, $bytes.Length)
            $probe.status_line = (New-Object System.IO.StreamReader($stream)).ReadLine()
            if ($probe.status_line -match '^HTTP/[0-9.]+ ([0-9]{3})') { $probe.connect_status = [int]$Matches[1] }
        } catch {
            $probe.connect.error = ConvertTo-ErrorInfo $_
        }
    }
    $client.Close()
    return $probe
}

function Connect-Tcp {
    param($Client, [string]$HostName, [int]$Port, [int]$TimeoutSeconds)
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $connect = [ordered]@{ ok = $false; address = $null; duration_ms = 0; timed_out = $false; error = $null }
    try {
        if ($Client.ConnectAsync($HostName, $Port).Wait($TimeoutSeconds * 1000)) {
            $connect.ok = $Client.Connected
            $connect.address = $Client.Client.RemoteEndPoint.Address.IPAddressToString
        } else {
            $connect.timed_out = $true
        }
    } catch {
        $connect.error = ConvertTo-ErrorInfo $_
    }
    $connect.duration_ms = Get-Milliseconds $watch
    return $connect
}

function ConvertTo-CertificateInfo {
    param($Certificate)
    # The AIA and CRL extensions as Windows formats them; the controller extracts the URLs.
    $aia = $Certificate.Extensions | Where-Object { $_.Oid.Value -eq '1.3.6.1.5.5.7.1.1' }
    $cdp = $Certificate.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.31' }
    return [ordered]@{
        subject = $Certificate.Subject
        issuer = $Certificate.Issuer
        thumbprint = $Certificate.Thumbprint
        not_before = $Certificate.NotBefore.ToUniversalTime().ToString('o')
        not_after = $Certificate.NotAfter.ToUniversalTime().ToString('o')
        aia_text = $(if ($aia) { $aia.Format($false) } else { $null })
        crl_text = $(if ($cdp) { $cdp.Format($false) } else { $null })
    }
}

function Get-RootEvidence {
    param($Thumbprints)
    return @($Thumbprints | ForEach-Object {
        $cert = Get-ChildItem -LiteralPath 'Cert:\LocalMachine\Root' | Where-Object Thumbprint -EQ $_ | Select-Object -First 1
        [ordered]@{ thumbprint = $_; present = ($null -ne $cert); subject = $(if ($cert) { $cert.Subject } else { $null }) }
    })
}

function Get-ChainUrls {
    param($Chain)
    $texts = @($Chain | ForEach-Object { $_.aia_text; $_.crl_text } | Where-Object { $_ })
    $found = @($texts | Select-String -Pattern 'URL=(http://[^\s,]+)' -AllMatches | ForEach-Object { $_.Matches } | ForEach-Object { $_.Groups[1].Value })
    return @($found | Select-Object -Unique | Select-Object -First 8)
}

$ProbeHelpers = @('ConvertTo-ErrorInfo', 'Get-Milliseconds', 'Invoke-Captured', 'Connect-Tcp', 'ConvertTo-CertificateInfo')

function New-ProbeSessionState {
    # Runspaces start empty: give them the helper functions the probe script blocks call.
    $state = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault()
    foreach ($name in $ProbeHelpers) {
        $definition = (Get-Item -LiteralPath "function:$name").Definition
        $state.Commands.Add((New-Object System.Management.Automation.Runspaces.SessionStateFunctionEntry -ArgumentList $name, $definition))
    }
    return $state
}

function Start-Probe {
    param($Pool, [scriptblock]$Code, [string]$Section, [object[]]$Arguments)
    $shell = [PowerShell]::Create()
    $shell.RunspacePool = $Pool
    [void]$shell.AddScript($Code.ToString())
    foreach ($argument in $Arguments) { [void]$shell.AddArgument($argument) }
    return [pscustomobject]@{ section = $Section; shell = $shell; handle = $shell.BeginInvoke() }
}

function Receive-Probe {
    param($Job, [datetime]$Deadline)
    $remaining = [int][Math]::Max(0, ($Deadline - [DateTime]::UtcNow).TotalMilliseconds)
    if (-not $Job.handle.AsyncWaitHandle.WaitOne($remaining)) {
        [void]$Job.shell.BeginStop($null, $null)
        return [ordered]@{ timed_out = $true; error = $null }
    }
    try {
        $output = $Job.shell.EndInvoke($Job.handle)
        return $output[$output.Count - 1]
    } catch {
        return [ordered]@{ timed_out = $false; error = (ConvertTo-ErrorInfo $_) }
    } finally {
        $Job.shell.Dispose()
    }
}

function Invoke-NetworkProbes {
    param($Request, $Policy)
    $sections = @($Request.sections)
    $timeouts = $Request.timeouts
    $limit = $(if ($Request.concurrent) { 16 } else { 1 })
    $pool = [RunspaceFactory]::CreateRunspacePool(1, $limit, (New-ProbeSessionState), $Host)
    $pool.Open()
    $jobs = New-Object System.Collections.ArrayList
    if ($sections -contains 'dns') {
        foreach ($name in @($Request.dns_names)) { [void]$jobs.Add((Start-Probe $pool $ProbeDns 'dns' @($name, $timeouts.dns))) }
    }
    if ($sections -contains 'tls') {
        [void]$jobs.Add((Start-Probe $pool $ProbeTls 'tls' @($Request.update_server, 443, $timeouts.connect, $timeouts.tls)))
    }
    if ($sections -contains 'curl') {
        $curl = Join-Path $env:SystemRoot 'System32\curl.exe'
        $curlArgs = '-v --max-time {0} https://{1}/' -f $timeouts.curl, $Request.update_server
        [void]$jobs.Add((Start-Probe $pool $ProbeProcess 'curl' @($curl, $curlArgs, ($timeouts.curl + 2))))
    }
    if ($sections -contains 'http') {
        foreach ($url in @($Request.http_urls)) { [void]$jobs.Add((Start-Probe $pool $ProbeHttp 'http' @($url, $timeouts.http, $null))) }
    }
    if (($sections -contains 'proxy') -and $Request.proxy) {
        [void]$jobs.Add((Start-Probe $pool $ProbeProxy 'proxy' @($Request.proxy.server, $Request.proxy.port, $Request.update_server, $timeouts.proxy, $(if ($Request.proxy.source) { $Request.proxy.source } else { 'request' }))))
    }
    $deadline = $Started.AddSeconds([double]$Request.deadline_s - 2)
    $probes = [ordered]@{}
    foreach ($section in @('dns', 'http')) { if ($sections -contains $section) { $probes[$section] = @() } }
    if ($sections -contains 'proxy') { $probes.proxy = $null }
    foreach ($job in $jobs) {
        $answer = Receive-Probe $job $deadline
        if ($job.section -eq 'dns' -or $job.section -eq 'http') { $probes[$job.section] += $answer } else { $probes[$job.section] = $answer }
    }
    # Second wave, same deadline: the OCSP/CRL addresses named by the chain the endpoint actually received.
    $chainJobs = New-Object System.Collections.ArrayList
    if ($Request.probe_chain_urls -and ($sections -contains 'http') -and $probes.tls) {
        foreach ($url in (Get-ChainUrls $probes.tls.chain)) {
            if (@($Request.http_urls) -notcontains $url) { [void]$chainJobs.Add((Start-Probe $pool $ProbeHttp 'http' @($url, $timeouts.http, $null))) }
        }
    }
    foreach ($job in $chainJobs) { $probes.http += (Receive-Probe $job $deadline) }
    $pool.Close()
    if ($sections -contains 'roots') { $probes.roots = Get-RootEvidence $Request.root_thumbprints }
    return $probes
}

function Invoke-AsSystem {
    param($Request)
    # The connector runs as LocalSystem: run the network probes there through a one-shot scheduled task.
    $id = [guid]::NewGuid().ToString('N')
    $work = Join-Path $env:SystemRoot "Temp\tetra-$id"
    [void](New-Item -ItemType Directory -Path $work)
    $outFile = Join-Path $work 'probes.json'
    $inner = $Request | Select-Object -Property * -ExcludeProperty context
    $payload = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes(($inner | ConvertTo-Json -Depth 6 -Compress)))
    $body = @(
        "`$TetraRequest = '$payload'"
        "`$Request = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String(`$TetraRequest)) | ConvertFrom-Json"
        "`$Started = [DateTime]::UtcNow"
        "`$Errors = New-Object System.Collections.ArrayList"
        "`$ProbeDns = {$ProbeDns}", "`$ProbeTls = {$ProbeTls}", "`$ProbeProcess = {$ProbeProcess}"
        "`$ProbeHttp = {$ProbeHttp}", "`$ProbeProxy = {$ProbeProxy}"
        "`$ProbeHelpers = @('$($ProbeHelpers -join "', '")')"
        ($ProbeHelpers + @('New-ProbeSessionState') | ForEach-Object { "function $_ {$((Get-Item -LiteralPath "function:$_").Definition)}" })
        "function Start-Probe {${function:Start-Probe}}", "function Receive-Probe {${function:Receive-Probe}}"
        "function Get-ChainUrls {${function:Get-ChainUrls}}"
        "function Get-RootEvidence {${function:Get-RootEvidence}}"
        "function Invoke-NetworkProbes {${function:Invoke-NetworkProbes}}"
        "Invoke-NetworkProbes `$Request `$null | ConvertTo-Json -Depth 8 -Compress | Set-Content -LiteralPath '$outFile' -Encoding UTF8"
    ) -join "`r`n"
    $scriptFile = Join-Path $work 'probes.ps1'
    Set-Content -LiteralPath $scriptFile -Value $body -Encoding ASCII
    $taskName = "secure_endpoint.tetra probe $id"
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$scriptFile`""
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    try {
        [void](Register-ScheduledTask -TaskName $taskName -Action $action -Principal $principal -Force)
        Start-ScheduledTask -TaskName $taskName
        $deadline = $Started.AddSeconds([double]$Request.deadline_s - 1)
        while (-not (Test-Path -LiteralPath $outFile) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 250 }
        Start-Sleep -Milliseconds 200
        if (-not (Test-Path -LiteralPath $outFile)) { throw (New-Object System.TimeoutException('LocalSystem probes did not finish before the deadline')) }
        return ([IO.File]::ReadAllText($outFile) | ConvertFrom-Json)
    } finally {
        Unregister-ScheduledTask -TaskName $taskName -Confirm:$false -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }
}

function Invoke-ForceUpdate {
    param($Sfc)
    $run = [ordered]@{ ran = $false; command = $null; exit_code = $null; duration_ms = 0; refused = $null }
    if (-not $Sfc -or -not $Sfc.company) { $run.refused = 'sfc_missing'; return $run }
    if ($Sfc.company -notmatch 'Cisco') { $run.refused = 'sfc_not_cisco'; return $run }
    $run.command = '"{0}" -forceupdate' -f $Sfc.path
    $captured = Invoke-Captured $Sfc.path '-forceupdate' 60
    $run.ran = $true
    $run.exit_code = $captured.exit_code
    $run.duration_ms = $captured.duration_ms
    return $run
}

function Invoke-SupportStep {
    param($Request, $Sfc)
    $support = [ordered]@{ work_dir = $Request.work_dir; refused = $null }
    # Never run a bare or foreign sfc.exe: Windows' System File Checker has the same name.
    if (-not $Sfc -or -not $Sfc.company) { $support.refused = 'sfc_missing'; return $support }
    if ($Sfc.company -notmatch 'Cisco') { $support.refused = 'sfc_not_cisco'; return $support }
    if ($Request.action -eq 'support_start') {
        [void](New-Item -ItemType Directory -Path $Request.work_dir -Force)
        $support.debug_logging = Invoke-Captured $Sfc.path '-l start' 30
        $support.capture = Start-Capture $Request
        $support.forceupdate = Invoke-ForceUpdate $Sfc
        return $support
    }
    try {
        $tool = Join-Path (Split-Path -Path $Sfc.path -Parent) 'ipsupporttool.exe'
        # Leave time inside the deadline for stopping the capture and debug logging afterwards.
        $stopBudget = @{ pktmon = 60; netsh = 120 }[[string]$Request.capture]
        $bundleSeconds = [Math]::Max(30, [int]$Request.deadline_s - 20 - 30 - [int]$stopBudget)
        $support.bundle = Invoke-Captured $tool ('-o "{0}"' -f $Request.work_dir) $bundleSeconds
    } finally {
        $support.capture = Stop-Capture $Request
        $support.debug_logging = Invoke-Captured $Sfc.path '-l stop' 30
    }
    $support.files = @(Get-ChildItem -LiteralPath $Request.work_dir -File | ForEach-Object {
        [ordered]@{ path = $_.FullName; size = $_.Length; sha256 = (Get-FileHash -LiteralPath $_.FullName -Algorithm SHA256).Hash }
    })
    return $support
}

function Start-Capture {
    param($Request)
    $file = Join-Path $Request.work_dir 'capture.etl'
    $size = [int]$Request.capture_max_mb
    if ($Request.capture -eq 'pktmon') {
        $run = Invoke-Captured (Join-Path $env:SystemRoot 'System32\pktmon.exe') ("start --capture --pkt-size 0 --file-name `"{0}`" --file-size {1}" -f $file, $size) 30
    } elseif ($Request.capture -eq 'netsh') {
        $run = Invoke-Captured (Join-Path $env:SystemRoot 'System32\netsh.exe') ("trace start capture=yes tracefile=`"{0}`" maxsize={1} overwrite=yes" -f $file, $size) 60
    } else {
        return [ordered]@{ tool = 'none'; started = $false }
    }
    return [ordered]@{ tool = $Request.capture; file = $file; exit_code = $run.exit_code; output = $run.stdout }
}

function Stop-Capture {
    param($Request)
    if ($Request.capture -eq 'pktmon') {
        $run = Invoke-Captured (Join-Path $env:SystemRoot 'System32\pktmon.exe') 'stop' 60
    } elseif ($Request.capture -eq 'netsh') {
        $run = Invoke-Captured (Join-Path $env:SystemRoot 'System32\netsh.exe') 'trace stop' 120
    } else {
        return [ordered]@{ tool = 'none'; stopped = $false }
    }
    return [ordered]@{ tool = $Request.capture; exit_code = $run.exit_code; output = $run.stdout }
}

function Assert-SupportPath {
    param([string]$Path)
    # Only the collection's own support folders may be read back or removed.
    $full = [IO.Path]::GetFullPath($Path)
    $prefix = Join-Path (Join-Path $env:SystemRoot 'Temp') 'tetra-support-'
    if (-not $full.StartsWith($prefix, [StringComparison]::OrdinalIgnoreCase)) {
        throw (New-Object System.UnauthorizedAccessException("only paths under $prefix* are allowed"))
    }
    return $full
}

function Remove-SupportFolder {
    param($Request)
    $folder = Assert-SupportPath $Request.work_dir
    $existed = Test-Path -LiteralPath $folder
    if ($existed) { Remove-Item -LiteralPath $folder -Recurse -Force }
    return [ordered]@{ work_dir = $folder; existed = $existed; removed = -not (Test-Path -LiteralPath $folder) }
}

function Read-FileChunk {
    param($Request)
    $full = Assert-SupportPath $Request.path
    $stream = [IO.File]::Open($full, 'Open', 'Read', 'ReadWrite')
    try {
        $want = [Math]::Min([long]$Request.length, 4194304)
        $length = [int][Math]::Min($want, [Math]::Max(0, $stream.Length - [long]$Request.offset))
        $buffer = New-Object byte[] $length
        [void]$stream.Seek([long]$Request.offset, 'Begin')
        $read = $stream.Read($buffer, 0, $length)
        return [ordered]@{ path = $Request.path; size = $stream.Length; offset = [long]$Request.offset
            data_b64 = [Convert]::ToBase64String($buffer, 0, $read); eof = (([long]$Request.offset + $read) -ge $stream.Length) }
    } finally {
        $stream.Dispose()
    }
}

function Find-ConfiguredProxy {
    param($Files)
    # The connector's proxy as its own files state it; the controller still reads and judges both files.
    foreach ($name in @('policy_xml', 'local_xml')) {
        $file = $Files.$name
        if (-not $file -or -not $file.readable) { continue }
        try {
            $xml = [xml]$file.text
            $server = $xml.SelectSingleNode("//*[local-name()='proxy']/*[local-name()='server']")
            $port = $xml.SelectSingleNode("//*[local-name()='proxy']/*[local-name()='port']")
            if ($server -and $server.InnerText) {
                return [pscustomobject]@{ server = $server.InnerText; port = $(if ($port -and $port.InnerText) { [int]$port.InnerText } else { 80 }); source = $name }
            }
        } catch {
            Add-EvidenceError $name $_
        }
    }
    return $null
}

# ---- main ----

$Document = [ordered]@{ format = 1; action = $Request.action; started = $Started.ToString('yyyy-MM-ddTHH:mm:ssZ'); context = 'user' }
$Sections = @($Request.sections)
try {
    $Document.host = Get-HostEvidence
    if ($Request.action -eq 'read_file') {
        $Document.file = Read-FileChunk $Request
    } elseif ($Request.action -eq 'support_cleanup') {
        $Document.support = Remove-SupportFolder $Request
    } else {
        $Install = Get-InstallEvidence
        $Folder = Get-ActiveFolder $Install
        $Install.sfc = Get-SfcEvidence $Folder
        if ($Sections -contains 'install') { $Document.install = $Install }
        if ($Request.action -eq 'forceupdate') { $Document.forceupdate = Invoke-ForceUpdate $Install.sfc }
        if ($Request.action -like 'support_*') { $Document.support = Invoke-SupportStep $Request $Install.sfc }
        if ($Sections -contains 'posture') {
            $ampcli = $(if ($Folder) { Join-Path $Folder 'AmpCLI.exe' } else { 'AmpCLI.exe' })
            $Document.posture = Invoke-Captured $ampcli 'posture' $Request.timeouts.ampcli
        }
        if ($Sections -contains 'files') {
            $dir = $Install.install_dir
            $Document.files = [ordered]@{
                local_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'local.xml' } else { $null })
                policy_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'policy.xml' } else { $null })
            }
        }
        if ($Sections -contains 'system') { $Document.system = Get-SystemEvidence }
        $network = @('dns', 'tls', 'curl', 'http', 'roots', 'proxy') | Where-Object { $Sections -contains $_ }
        if ($network -and -not $Request.proxy -and $Document.files) { $Request.proxy = Find-ConfiguredProxy $Document.files }
        if ($network) {
            if ($Request.context -eq 'system') {
                try {
                    $Document.probes = Invoke-AsSystem $Request
                    $Document.context = 'system'
                } catch {
                    Add-EvidenceError 'context' $_
                    $Document.probes = Invoke-NetworkProbes $Request $null
                }
            } else {
                $Document.probes = Invoke-NetworkProbes $Request $null
            }
        }
    }
} catch {
    Add-EvidenceError 'script' $_
}
$Document.errors = $Errors
$Document.duration_ms = Get-Milliseconds $Clock
# One string on the pipeline: powershell.exe writes it to stdout (winrm, ssh), psrp returns it as
# output. Non-ASCII escaped as \uXXXX because 5.1's ConvertTo-Json leaves it raw and the console
# code page would garble it.
$Json = $Document | ConvertTo-Json -Depth 8 -Compress
[regex]::Replace($Json, '[^\x00-\x7F]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
