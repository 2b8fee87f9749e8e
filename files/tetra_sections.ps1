# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, local sections part (collect and remediation entries; see tetra_core.ps1):
# posture (AmpCLI), the connector's files and the machine's network configuration.

# The evidence never needs a password (W32): Read-TextFile drops from local.xml/policy.xml, before anything
# is printed, every element whose name contains password/passwd/pwd (any case, with or without a namespace
# prefix; with its content, or self-closing) and every such attribute with a quoted value (xmlns:pwd="..."
# namespace declarations stay). The lab drops them the same way (tests/lab/evidence.py, same patterns).
$SecretElementPattern = '(?is)<((?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*)(?:\s[^<>]*?)?(?:/>|>.*?</\1\s*>)'
$SecretAttributePattern = '(?i)\s+(?!xmlns:)(?:[\w.-]+:)?[\w.-]*(?:password|passwd|pwd)[\w.-]*\s*=\s*(?:"[^"]*"|''[^'']*'')'

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

function Add-LocalSections {
    param($Document, $Request, $Install)
    # The sections read on the machine itself; one try/catch each, so one failure never loses the others.
    $sections = @($Request.sections)
    if ($sections -contains 'install') { $Document.install = $Install.evidence }
    if ($sections -contains 'posture') {
        try {
            $ampcli = $(if ($Install.folder) { Join-Path $Install.folder 'AmpCLI.exe' } else { 'AmpCLI.exe' })
            $Document.posture = Invoke-Tool $Request $ampcli 'ampcli_posture' $Request.timeouts.ampcli $null
        } catch {
            $Document.posture = $null
            Add-EvidenceError 'posture' $_
        }
    }
    if ($sections -contains 'files') {
        try {
            $dir = $(if ($Install.evidence) { $Install.evidence.install_dir } else { $null })
            $Document.files = [ordered]@{
                local_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'local.xml' } else { $null })
                policy_xml = Read-TextFile $(if ($dir) { Join-Path $dir 'policy.xml' } else { $null })
            }
        } catch {
            $Document.files = $null
            Add-EvidenceError 'files' $_
        }
    }
    if ($sections -contains 'system') {
        try { $Document.system = Get-SystemEvidence $Request } catch { $Document.system = $null; Add-EvidenceError 'system' $_ }
    }
}
