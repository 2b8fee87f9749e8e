# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Evidence collector, file-transfer entry (see tetra_core.ps1): reads a support bundle back in chunks
# and removes its folder, only under %SystemRoot%\Temp\tetra-support-*. Joined with the core part only.

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

function Remove-SupportFolder {
    param($Request)
    $folder = Assert-SupportPath $Request.work_dir
    $existed = Test-Path -LiteralPath $folder
    if ($existed) { Remove-Item -LiteralPath $folder -Recurse -Force }
    return [ordered]@{ work_dir = $folder; existed = $existed; removed = -not (Test-Path -LiteralPath $folder) }
}

# ---- main of the file-transfer entry: no CIM/WMI, no program started ----

$Document = New-Document
$Request = Read-TetraRequest $Document @('read_file', 'support_cleanup') @()
try { $Document.host = Get-HostEvidence } catch { $Document.host = $null; Add-EvidenceError 'host' $_ }
if ($Request -and $Request.action -eq 'read_file') {
    try { $Document.file = Read-FileChunk $Request } catch { Add-EvidenceError 'file' $_ }
} elseif ($Request) {
    try { $Document.support = Remove-SupportFolder $Request } catch { Add-EvidenceError 'support' $_ }
}
Complete-Document $Document
