# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, probes part (collect entry; see tetra_core.ps1): runs the probe blocks of
# tetra_probe_blocks.ps1 concurrently under one deadline and reports each one, also when it did not run.

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
