# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, probe blocks part (collect entry; see tetra_core.ps1): the network probes.
# Each block runs in its own runspace (tetra_probes.ps1), where only the helpers named in
# $ProbeHelpers exist: a block calls nothing else of the collector.

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
