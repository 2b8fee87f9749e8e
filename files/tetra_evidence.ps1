# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector for secure_endpoint.tetra, evidence format 1 (docs/evidence.md).
# Windows PowerShell 5.1. It gathers raw evidence and decides nothing: every value is
# interpreted on the controller. Every behaviour it relies on is listed, with its source, in
# docs/windows-assumptions.md (rows W1..Wn are referenced below).
#
# Two ways to run it:
# - dot-sourced by the collection's bootstrap (plugins/plugin_utils/_remote.py), which sets
#   $TetraRequest (base64 JSON) and $TetraScript (this text); no arguments are passed;
# - as a file: powershell -ExecutionPolicy Bypass -File tetra_evidence.ps1 -RequestFile req.json
#   [-OutFile evidence.json]; the request file is plain JSON, UTF-8.
# Output: exactly one JSON document, as one string on the pipeline (or in -OutFile).
# Command lines of child processes come from the request (built in Python, _request.py); the
# script only fills {placeholders} with values it checked (Assert-PlaceholderValue).

param([string]$RequestFile, [string]$OutFile)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Started = [DateTime]::UtcNow
$Clock = [Diagnostics.Stopwatch]::StartNew()
$Errors = New-Object System.Collections.ArrayList
$Invariant = [Globalization.CultureInfo]::InvariantCulture
# HRESULTs of IOException for ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION (W7).
$SharingViolations = @(-2147024864, -2147024863)
# Task Scheduler: SCHED_S_TASK_HAS_NOT_RUN, SCHED_S_TASK_RUNNING (W13).
$TaskNeverRan = 267011
$TaskRunning = 267009
# The evidence never needs a password (W32): Read-TextFile drops from local.xml/policy.xml, before anything
# is printed, every element whose name contains password/passwd/pwd (any case, with or without a namespace
# prefix; with its content, or self-closing) and every such attribute with a quoted value (xmlns:pwd="..."
# namespace declarations stay). The lab drops them the same way (tests/lab/evidence.py, same patterns).
$SecretElementPattern = '(?is)<((?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*)(?:\s[^<>]*?)?(?:/>|>.*?</\1\s*>)'
$SecretAttributePattern = '(?i)\s+(?!xmlns:)(?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*\s*=\s*(?:"[^"]*"|''[^'']*'')'

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

function Read-TextFile {
    param([string]$Path)
    $file = [ordered]@{ path = $Path; readable = $false; text = $null; attempts = 0; error = $null }
    if (-not $Path) { return $file }
    try {
        $read = Read-SharedText $Path
        # Proxy password elements and attributes are dropped here, never printed (W32).
        $text = [regex]::Replace($read.text, $SecretElementPattern, '')
        $file.text = [regex]::Replace($text, $SecretAttributePattern, '')
        $file.attempts = $read.attempts
        $file.readable = $true
    } catch {
        $file.error = ConvertTo-ErrorInfo $_
        Add-EvidenceError ((Split-Path -Path $Path -Leaf) -replace '\.', '_') $_
    }
    return $file
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
    try {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem -OperationTimeoutSec 15
        $hostInfo.os_caption = $os.Caption
        $hostInfo.os_build = $os.Version
    } catch {
        Add-EvidenceError 'host' $_
    }
    return $hostInfo
}

function Get-SystemEvidence {
    param($Request)
    $netsh = Invoke-Tool $Request (Join-Path $env:SystemRoot 'System32\netsh.exe') 'netsh_winhttp_proxy' 10 $null
    if ($netsh.error) { Add-EvidenceError 'system' $netsh.error }
    $curl = Join-Path $env:SystemRoot 'System32\curl.exe'
    $servers = @()
    try { $servers = @(Get-DnsClientServerAddress -AddressFamily IPv4 | ForEach-Object { $_.ServerAddresses }) } catch { Add-EvidenceError 'system' $_ }
    return [ordered]@{
        winhttp_proxy = $netsh.stdout
        winhttp_proxy_encoding = $netsh.encoding
        curl_path = $(if (Test-Path -LiteralPath $curl) { $curl } else { $null })
        dns_servers = $servers
        pac_url = Get-RegistryValue 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Internet Settings' 'AutoConfigURL'
    }
}

# ---- network probes: each runs in its own runspace, where the helpers above are exported ----

$ProbeDns = {
    param([string]$Name, [int]$TimeoutSeconds)
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $probe = [ordered]@{ name = $Name; addresses = @(); duration_ms = 0; timed_out = $false; not_run = $false; error = $null }
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
    $probe = [ordered]@{ host = $HostName; port = $Port; connect = $null; handshake = $null; policy_errors = $null
        chain = @(); chain_status = @(); chain_source = $null; timed_out = $false; not_run = $false }
    $client = New-Object System.Net.Sockets.TcpClient
    $probe.connect = Connect-Tcp $client $HostName $Port $ConnectSeconds
    if (-not $probe.connect.ok) { $client.Close(); return $probe }
    # .NET Framework resets the X509Chain (and may dispose the certificate) once the callback returns
    # (W1): copy raw bytes and status names out INSIDE the callback, keep no object.
    $script:TetraSeen = @{ leaf = $null; raw = @(); status = @(); errors = $null }
    $callback = {
        param($Sender, $Certificate, $Chain, $PolicyErrors)
        $script:TetraSeen.errors = [string]$PolicyErrors
        if ($Certificate) { $script:TetraSeen.leaf = $Certificate.GetRawCertData() }
        if ($Chain) {
            $script:TetraSeen.raw = @($Chain.ChainElements | ForEach-Object { ,$_.Certificate.RawData })
            $script:TetraSeen.status = @($Chain.ChainStatus | ForEach-Object { [string]$_.Status })
        }
        return ($PolicyErrors -eq [System.Net.Security.SslPolicyErrors]::None)
    }
    $client.ReceiveTimeout = $TlsSeconds * 1000
    $client.SendTimeout = $TlsSeconds * 1000
    $ssl = New-Object System.Net.Security.SslStream($client.GetStream(), $false, $callback)
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $handshake = [ordered]@{ ok = $false; protocol = $null; duration_ms = 0; timed_out = $false; error = $null }
    try {
        # Revocation checking on, as the connector does. Its CRL/OCSP fetch is not bounded by the socket
        # timeouts (W3): the shared deadline bounds this probe (Receive-Probe).
        $ssl.AuthenticateAsClient($HostName, $null, [System.Security.Authentication.SslProtocols]::Tls12, $true)
        $handshake.ok = $true
        $handshake.protocol = [string]$ssl.SslProtocol
    } catch {
        $handshake.error = ConvertTo-ErrorInfo $_
        $handshake.timed_out = ($handshake.error.type -eq 'System.IO.IOException' -and $watch.Elapsed.TotalSeconds -ge $TlsSeconds)
    }
    $handshake.duration_ms = Get-Milliseconds $watch
    $probe.handshake = $handshake
    $ssl.Dispose()
    $client.Close()
    $seen = $script:TetraSeen
    $probe.policy_errors = $seen.errors
    if ($seen.raw.Count -gt 0) {
        $probe.chain = @($seen.raw | ForEach-Object { ConvertTo-CertificateInfo (New-Object System.Security.Cryptography.X509Certificates.X509Certificate2(,$_)) })
        $probe.chain_status = @($seen.status)
        $probe.chain_source = 'callback'
    } elseif ($seen.leaf) {
        # No chain elements from the callback: build our own chain from the copied leaf, with explicit
        # online revocation over the entire chain and a bounded URL retrieval time (W2).
        $rebuilt = Get-RebuiltChain $seen.leaf $TlsSeconds
        $probe.chain = $rebuilt.chain
        $probe.chain_status = $rebuilt.status
        $probe.chain_source = 'rebuilt'
    }
    return $probe
}

$ProbeProcess = {
    param([string]$Path, $Command, [int]$TimeoutSeconds, [string]$Url)
    # curl.exe -v writes its trace to stderr: keep it first, as a console shows it.
    $run = Invoke-Captured $Path $Command $TimeoutSeconds
    return [ordered]@{ path = $run.path; url = $Url; found = $run.found; exit_code = $run.exit_code; output = ('' + $run.stderr + $run.stdout)
        timed_out = $run.timed_out; not_run = $false; duration_ms = $run.duration_ms; encoding = $run.encoding; error = $run.error }
}

$ProbeHttp = {
    param([string]$Url, [int]$TimeoutSeconds, [string]$ProxyUrl)
    $probe = [ordered]@{ url = $Url; status = $null; duration_ms = 0; timed_out = $false; not_run = $false; via_proxy = $null
        proxy_mode = $null; error = $null }
    $watch = [Diagnostics.Stopwatch]::StartNew()
    try {
        $web = [System.Net.HttpWebRequest]::Create($Url)
        $web.Method = 'GET'
        $web.Timeout = $TimeoutSeconds * 1000
        $web.AllowAutoRedirect = $false
        # Always an explicit proxy: the default is the calling user's WinINet/WPAD settings (W8).
        $web.Proxy = [System.Net.GlobalProxySelection]::GetEmptyWebProxy()
        $probe.proxy_mode = 'direct'
        if ($ProxyUrl) {
            $web.Proxy = New-Object System.Net.WebProxy($ProxyUrl)
            $probe.via_proxy = $ProxyUrl
            $probe.proxy_mode = 'configured'
        }
        $response = $web.GetResponse()
        $probe.status = [int]$response.StatusCode
        $response.Close()
    } catch {
        $probe.error = ConvertTo-ErrorInfo $_
        $probe.timed_out = ($probe.error.status -eq 'Timeout')
        $failure = $_.Exception.InnerException
        if ($failure -is [System.Net.WebException] -and $failure.Response) { $probe.status = [int]$failure.Response.StatusCode }
    }
    $probe.duration_ms = Get-Milliseconds $watch
    return $probe
}

$ProbeProxy = {
    param([string]$Server, [int]$Port, [string]$Target, [int]$TimeoutSeconds, [string]$Source)
    # Ask the proxy for a tunnel the way the connector does, and keep its first answer line.
    $probe = [ordered]@{ server = $Server; port = $Port; source = $Source; connect = $null; connect_status = $null; status_line = $null
        timed_out = $false; not_run = $false }
    $client = New-Object System.Net.Sockets.TcpClient
    $probe.connect = Connect-Tcp $client $Server $Port $TimeoutSeconds
    if ($probe.connect.ok) {
        try {
            $client.ReceiveTimeout = $TimeoutSeconds * 1000
            $stream = $client.GetStream()
            $bytes = [Text.Encoding]::ASCII.GetBytes("CONNECT ${Target}:443 HTTP/1.1`r`nHost: ${Target}:443`r`n`r`n")
            $stream.Write($bytes, 0, $bytes.Length)
            $probe.status_line = (New-Object System.IO.StreamReader($stream, [Text.Encoding]::ASCII)).ReadLine()
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
        not_before = Format-Date $Certificate.NotBefore
        not_after = Format-Date $Certificate.NotAfter
        aia_text = $(if ($aia) { $aia.Format($false) } else { $null })
        crl_text = $(if ($cdp) { $cdp.Format($false) } else { $null })
    }
}

function Get-RebuiltChain {
    param([byte[]]$Leaf, [int]$TimeoutSeconds)
    $certificate = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2(,$Leaf)
    $chain = New-Object System.Security.Cryptography.X509Certificates.X509Chain
    $chain.ChainPolicy.RevocationMode = [System.Security.Cryptography.X509Certificates.X509RevocationMode]::Online
    $chain.ChainPolicy.RevocationFlag = [System.Security.Cryptography.X509Certificates.X509RevocationFlag]::EntireChain
    $chain.ChainPolicy.UrlRetrievalTimeout = New-TimeSpan -Seconds ([Math]::Max(1, $TimeoutSeconds))
    try {
        [void]$chain.Build($certificate)
        # Copied out before Reset(): nothing of the chain object is kept.
        $elements = @($chain.ChainElements | ForEach-Object { ConvertTo-CertificateInfo $_.Certificate })
        $status = @($chain.ChainStatus | ForEach-Object { [string]$_.Status })
    } finally {
        $chain.Reset()
    }
    return [pscustomobject]@{ chain = $elements; status = $status }
}

function Get-RootEvidence {
    param($Thumbprints)
    $roots = New-Object System.Collections.ArrayList
    foreach ($thumbprint in @($Thumbprints)) {
        $cert = Get-ChildItem -LiteralPath 'Cert:\LocalMachine\Root' | Where-Object Thumbprint -EQ $thumbprint | Select-Object -First 1
        [void]$roots.Add([ordered]@{ thumbprint = $thumbprint; present = ($null -ne $cert); subject = $(if ($cert) { $cert.Subject } else { $null }) })
    }
    # The leading comma keeps a one-element list a list: a function's output is unrolled (W10).
    return ,$roots.ToArray()
}

function Get-ChainUrls {
    param($Chain)
    $texts = @($Chain | ForEach-Object { $_.aia_text; $_.crl_text } | Where-Object { $_ })
    $found = @($texts | Select-String -Pattern 'URL=(http://[^\s,]+)' -AllMatches | ForEach-Object { $_.Matches } | ForEach-Object { $_.Groups[1].Value })
    return ,@($found | Select-Object -Unique | Select-Object -First 8)
}

$ProbeHelpers = @('ConvertTo-ErrorInfo', 'Get-Milliseconds', 'Format-Date', 'Get-TextEncoding', 'Invoke-Captured', 'Connect-Tcp',
    'ConvertTo-CertificateInfo', 'Get-RebuiltChain')

function New-ProbeSessionState {
    # Runspaces start empty: give them the helper functions the probe script blocks call.
    $state = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault()
    foreach ($name in $ProbeHelpers) {
        $definition = (Get-Item -LiteralPath "function:$name").Definition
        $state.Commands.Add((New-Object System.Management.Automation.Runspaces.SessionStateFunctionEntry -ArgumentList $name, $definition))
    }
    return $state
}

function Get-ProbePlan {
    param($Request)
    # Every probe the request asks for, with its identity: the same list serves running them and
    # reporting them as not run.
    $sections = @($Request.sections)
    $timeouts = $Request.timeouts
    $plan = New-Object System.Collections.ArrayList
    if ($sections -contains 'dns') {
        foreach ($name in @($Request.dns_names)) {
            [void]$plan.Add([pscustomobject]@{ section = 'dns'; code = $ProbeDns; arguments = @($name, $timeouts.dns); identity = [ordered]@{ name = $name } })
        }
    }
    if ($sections -contains 'tls') {
        [void]$plan.Add([pscustomobject]@{ section = 'tls'; code = $ProbeTls; arguments = @($Request.update_server, 443, $timeouts.connect, $timeouts.tls)
            identity = [ordered]@{ host = $Request.update_server; port = 443 } })
    }
    if ($sections -contains 'curl') {
        $curl = Join-Path $env:SystemRoot 'System32\curl.exe'
        $url = 'https://{0}/' -f $Request.update_server
        $command = $null
        try { $command = Get-CommandArguments $Request 'curl' $null } catch { }
        [void]$plan.Add([pscustomobject]@{ section = 'curl'; code = $ProbeProcess; arguments = @($curl, $command, ($timeouts.curl + 2), $url)
            identity = [ordered]@{ path = $curl; url = $url } })
    }
    if ($sections -contains 'http') {
        foreach ($url in @($Request.http_urls)) {
            [void]$plan.Add([pscustomobject]@{ section = 'http'; code = $ProbeHttp; arguments = @($url, $timeouts.http, $null); identity = [ordered]@{ url = $url } })
        }
    }
    if (($sections -contains 'proxy') -and $Request.proxy) {
        $source = $(if ($Request.proxy.source) { $Request.proxy.source } else { 'request' })
        [void]$plan.Add([pscustomobject]@{ section = 'proxy'; code = $ProbeProxy
            arguments = @($Request.proxy.server, $Request.proxy.port, $Request.update_server, $timeouts.proxy, $source)
            identity = [ordered]@{ server = $Request.proxy.server; port = $Request.proxy.port; source = $source } })
    }
    return ,$plan.ToArray()
}

function New-ProbeRecord {
    param($Identity, [bool]$TimedOut, [bool]$NotRun, $ErrorInfo)
    $record = [ordered]@{}
    foreach ($key in $Identity.Keys) { $record[$key] = $Identity[$key] }
    $record.timed_out = $TimedOut
    $record.not_run = $NotRun
    $record.error = $ErrorInfo
    return $record
}

function Start-Probe {
    param($Pool, $Item)
    $shell = [PowerShell]::Create()
    $shell.RunspacePool = $Pool
    [void]$shell.AddScript($Item.code.ToString())
    foreach ($argument in $Item.arguments) { [void]$shell.AddArgument($argument) }
    return [pscustomobject]@{ section = $Item.section; identity = $Item.identity; shell = $shell; handle = $shell.BeginInvoke() }
}

function Receive-Probe {
    param($Job, [datetime]$Deadline)
    $remaining = [int][Math]::Max(0, ($Deadline - [DateTime]::UtcNow).TotalMilliseconds)
    if (-not $Job.handle.AsyncWaitHandle.WaitOne($remaining)) {
        # Still queued (never started) or still running: report which, with its identity, and stop
        # it without waiting (a native revocation fetch does not return to a Stop request, W4).
        $notRun = ($Job.shell.InvocationStateInfo.State -eq 'NotStarted')
        [void]$Job.shell.BeginStop($null, $null)
        return (New-ProbeRecord $Job.identity (-not $notRun) $notRun $null)
    }
    try {
        $output = $Job.shell.EndInvoke($Job.handle)
        if ($output.Count -gt 0) { return $output[$output.Count - 1] }
        return (New-ProbeRecord $Job.identity $false $false $null)
    } catch {
        return (New-ProbeRecord $Job.identity $false $false (ConvertTo-ErrorInfo $_))
    } finally {
        $Job.shell.Dispose()
    }
}

function Add-ProbeAnswer {
    param($Probes, [string]$Section, $Answer)
    if ($Section -eq 'dns' -or $Section -eq 'http') { [void]$Probes[$Section].Add($Answer) } else { $Probes[$Section] = $Answer }
}

function New-ProbeSections {
    param($Request)
    $sections = @($Request.sections)
    $probes = [ordered]@{}
    foreach ($section in @('dns', 'tls', 'curl', 'http', 'proxy')) {
        if ($sections -contains $section) {
            $probes[$section] = $(if ($section -eq 'dns' -or $section -eq 'http') { New-Object System.Collections.ArrayList } else { $null })
        }
    }
    return $probes
}

function Invoke-NetworkProbes {
    param($Request)
    $sections = @($Request.sections)
    $probes = New-ProbeSections $Request
    $limit = $(if ($Request.concurrent) { 16 } else { 1 })
    $pool = [RunspaceFactory]::CreateRunspacePool(1, $limit, (New-ProbeSessionState), $Host)
    $pool.Open()
    $deadline = $Started.AddSeconds([double]$Request.deadline_s - 2)
    try {
        $jobs = New-Object System.Collections.ArrayList
        foreach ($item in (Get-ProbePlan $Request)) { [void]$jobs.Add((Start-Probe $pool $item)) }
        foreach ($job in $jobs) { Add-ProbeAnswer $probes $job.section (Receive-Probe $job $deadline) }
        # Second wave, same deadline: the OCSP/CRL addresses named by the chain the endpoint actually received.
        if ($Request.probe_chain_urls -and ($sections -contains 'http') -and $probes.tls -and $probes.tls.chain) {
            $wave = New-Object System.Collections.ArrayList
            foreach ($url in (Get-ChainUrls $probes.tls.chain)) {
                if (@($Request.http_urls) -notcontains $url) {
                    $item = [pscustomobject]@{ section = 'http'; code = $ProbeHttp; arguments = @($url, $Request.timeouts.http, $null); identity = [ordered]@{ url = $url } }
                    [void]$wave.Add((Start-Probe $pool $item))
                }
            }
            foreach ($job in $wave) { Add-ProbeAnswer $probes 'http' (Receive-Probe $job $deadline) }
        }
    } finally {
        # Never Close(): it waits for every pipeline, and a stuck revocation fetch would hold the
        # document past the controller's deadline. BeginClose() returns at once (W4).
        [void]$pool.BeginClose($null, $null)
    }
    if ($sections -contains 'roots') { $probes.roots = Get-RootEvidence $Request.root_thumbprints }
    return $probes
}

function New-NotRunProbes {
    param($Request, $ErrorInfo)
    # The network probes did not run (the LocalSystem task did not finish): each one says so, with
    # its identity, so the controller reports "not run" instead of inventing a network cause.
    $probes = New-ProbeSections $Request
    foreach ($item in (Get-ProbePlan $Request)) { Add-ProbeAnswer $probes $item.section (New-ProbeRecord $item.identity $false $true $ErrorInfo) }
    if (@($Request.sections) -contains 'roots') { $probes.roots = Get-RootEvidence $Request.root_thumbprints }
    return $probes
}

function Get-SelfText {
    # The shipped script as it runs here: the bootstrap's $TetraScript, or this file (-File use).
    if ($TetraScript) { return [string]$TetraScript }
    if ($PSCommandPath) { return (Read-SharedText $PSCommandPath).text }
    throw (New-Object System.InvalidOperationException('the script text is not available to hand to the LocalSystem task'))
}

function Write-Utf8File {
    param([string]$Path, [string]$Text)
    [IO.File]::WriteAllText($Path, $Text, (New-Object System.Text.UTF8Encoding($false)))
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

function Invoke-AsSystem {
    param($Request, $Document)
    # The connector runs as LocalSystem: run the network probes there, through a one-shot scheduled
    # task that runs THIS script (as shipped) with a request asking for the probes only.
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

function Invoke-ForceUpdate {
    param($Request, $Sfc)
    $run = [ordered]@{ ran = $false; command = $null; exit_code = $null; duration_ms = 0; encoding = $null; refused = $null }
    if (-not $Sfc -or -not $Sfc.company) { $run.refused = 'sfc_missing'; return $run }
    if ($Sfc.company -notmatch 'Cisco') { $run.refused = 'sfc_not_cisco'; return $run }
    $command = Get-CommandArguments $Request 'sfc_forceupdate' $null
    $run.command = '"{0}" {1}' -f $Sfc.path, $command.arguments
    $captured = Invoke-Captured $Sfc.path $command 60
    $run.ran = $true
    $run.exit_code = $captured.exit_code
    $run.duration_ms = $captured.duration_ms
    $run.encoding = $captured.encoding
    return $run
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
        if ($capture -eq 'pktmon') { $stop += 'pktmon_stop' } elseif ($capture -eq 'netsh') { $stop += 'netsh_trace_stop' }
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
        if ($name -eq 'pktmon_stop') { $path = Join-Path $env:SystemRoot 'System32\pktmon.exe' }
        elseif ($name -eq 'netsh_trace_stop') { $path = Join-Path $env:SystemRoot 'System32\netsh.exe' }
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
    # Never run a bare or foreign sfc.exe: Windows' System File Checker has the same name.
    if (-not $Sfc -or -not $Sfc.company) { $support.refused = 'sfc_missing'; return $support }
    if ($Sfc.company -notmatch 'Cisco') { $support.refused = 'sfc_not_cisco'; return $support }
    $work = Assert-PlaceholderValue (Assert-SupportPath $Request.work_dir)
    $values = @{ work_dir = $work }
    if ($Request.action -eq 'support_start') {
        $support.rolled_back = $null
        $maxMb = [int]$Request.capture_max_mb
        if (($Request.capture -eq 'pktmon' -or $Request.capture -eq 'netsh') -and ($maxMb -lt 1 -or $maxMb -gt 4096)) {
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
            $done.capture = ($Request.capture -eq 'pktmon' -or $Request.capture -eq 'netsh')
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
        $stopBudget = @{ pktmon = 60; netsh = 120 }[[string]$Request.capture]
        $bundleSeconds = [Math]::Max(30, [int]$Request.deadline_s - 20 - 30 - [int]$stopBudget)
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

function Start-Capture {
    param($Request, [hashtable]$Values)
    $file = Join-Path $Values.work_dir 'capture.etl'
    if ($Request.capture -eq 'pktmon') {
        $run = Invoke-Tool $Request (Join-Path $env:SystemRoot 'System32\pktmon.exe') 'pktmon_start' 30 $Values
    } elseif ($Request.capture -eq 'netsh') {
        $run = Invoke-Tool $Request (Join-Path $env:SystemRoot 'System32\netsh.exe') 'netsh_trace_start' 60 $Values
    } else {
        return [ordered]@{ tool = 'none'; started = $false }
    }
    return [ordered]@{ tool = $Request.capture; file = $file; exit_code = $run.exit_code; output = $run.stdout; encoding = $run.encoding; error = $run.error }
}

function Stop-Capture {
    param($Request)
    if ($Request.capture -eq 'pktmon') {
        $run = Invoke-Tool $Request (Join-Path $env:SystemRoot 'System32\pktmon.exe') 'pktmon_stop' 60 $null
    } elseif ($Request.capture -eq 'netsh') {
        $run = Invoke-Tool $Request (Join-Path $env:SystemRoot 'System32\netsh.exe') 'netsh_trace_stop' 120 $null
    } else {
        return [ordered]@{ tool = 'none'; stopped = $false }
    }
    return [ordered]@{ tool = $Request.capture; exit_code = $run.exit_code; output = $run.stdout; encoding = $run.encoding; error = $run.error }
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

# ---- main: one try/catch per section, so one failure never loses the others ----

$Request = $null
$Document = [ordered]@{ format = 1; action = $null; started = (Format-Date $Started); context = 'user' }
try {
    if ($TetraRequest) {
        $Request = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($TetraRequest)) | ConvertFrom-Json
    } elseif ($RequestFile) {
        $Request = (Read-SharedText $RequestFile).text | ConvertFrom-Json
    } else {
        throw (New-Object System.ArgumentException('no request: set $TetraRequest or pass -RequestFile'))
    }
    $Document.action = $Request.action
} catch {
    Add-EvidenceError 'request' $_
}
$Sections = @()
if ($Request) { $Sections = @($Request.sections) }
try { $Document.host = Get-HostEvidence } catch { $Document.host = $null; Add-EvidenceError 'host' $_ }

if ($Request -and $Request.action -eq 'read_file') {
    try { $Document.file = Read-FileChunk $Request } catch { Add-EvidenceError 'file' $_ }
} elseif ($Request -and $Request.action -eq 'support_cleanup') {
    try { $Document.support = Remove-SupportFolder $Request } catch { Add-EvidenceError 'support' $_ }
} elseif ($Request -and $Request.action -eq 'probes_only') {
    # The LocalSystem task's run (Invoke-AsSystem): the network probes only.
    try { $Document.probes = Invoke-NetworkProbes $Request } catch { Add-EvidenceError 'probes' $_ }
} elseif ($Request) {
    $Install = $null
    $Folder = $null
    try {
        $Install = Get-InstallEvidence
        $Folder = Get-ActiveFolder $Install
        $Install.sfc = Get-SfcEvidence $Folder
    } catch {
        Add-EvidenceError 'install' $_
    }
    if ($Sections -contains 'install') { $Document.install = $Install }
    $Sfc = $(if ($Install) { $Install.sfc } else { $null })
    if ($Request.action -eq 'forceupdate') {
        try { $Document.forceupdate = Invoke-ForceUpdate $Request $Sfc } catch { $Document.forceupdate = $null; Add-EvidenceError 'forceupdate' $_ }
    }
    if ($Request.action -like 'support_*') {
        try { $Document.support = Invoke-SupportStep $Request $Sfc } catch { Add-EvidenceError 'support' $_ }
    }
    if ($Sections -contains 'posture') {
        try {
            $ampcli = $(if ($Folder) { Join-Path $Folder 'AmpCLI.exe' } else { 'AmpCLI.exe' })
            $Document.posture = Invoke-Tool $Request $ampcli 'ampcli_posture' $Request.timeouts.ampcli $null
        } catch {
            $Document.posture = $null
            Add-EvidenceError 'posture' $_
        }
    }
    if ($Sections -contains 'files') {
        try {
            $dir = $(if ($Install) { $Install.install_dir } else { $null })
            $Document.files = [ordered]@{
                local_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'local.xml' } else { $null })
                policy_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'policy.xml' } else { $null })
            }
        } catch {
            $Document.files = $null
            Add-EvidenceError 'files' $_
        }
    }
    if ($Sections -contains 'system') {
        try { $Document.system = Get-SystemEvidence $Request } catch { $Document.system = $null; Add-EvidenceError 'system' $_ }
    }
    $Network = @('dns', 'tls', 'curl', 'http', 'roots', 'proxy') | Where-Object { $Sections -contains $_ }
    if ($Network) {
        try {
            if (-not $Request.proxy -and $Document.files) {
                $Request | Add-Member -NotePropertyName proxy -NotePropertyValue (Find-ConfiguredProxy $Document.files) -Force
            }
            $Probes = $null
            if ($Request.context -eq 'system') {
                $Probes = Invoke-AsSystem $Request $Document
                if ($Probes) {
                    $Document.context = 'system'
                } elseif ($Document.system_task.started) {
                    # It started and did not finish: no time is left to run them here.
                    $Document.context = 'system'
                    $failure = New-Object System.TimeoutException('the LocalSystem task did not finish before the deadline')
                    Add-EvidenceError 'system_task' $failure
                    $Probes = New-NotRunProbes $Request (ConvertTo-ErrorInfo $failure)
                } else {
                    $failure = New-Object System.InvalidOperationException('the LocalSystem task did not start; probes ran as the calling user')
                    if ($Document.system_task.error) { $failure = New-Object System.InvalidOperationException($Document.system_task.error.message) }
                    Add-EvidenceError 'context' $failure
                }
            }
            if (-not $Probes) { $Probes = Invoke-NetworkProbes $Request }
            $Document.probes = $Probes
        } catch {
            $Document.probes = $null
            Add-EvidenceError 'probes' $_
        }
    }
}
$Document.errors = $Errors
$Document.duration_ms = Get-Milliseconds $Clock
Write-Document $Document
