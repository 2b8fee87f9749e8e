# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Runs the evidence collector locally, without WinRM (docs/evidence.md):
#   powershell -ExecutionPolicy Bypass -File tetra_evidence.ps1 -RequestFile collect-request.json -OutFile HOST.json
# It joins the parts of the entry the request's action needs, as entries.json lists them (the same
# join the controller does), and runs the joined text with the request file.

param([Parameter(Mandatory = $true)][string]$RequestFile, [string]$OutFile)

$ErrorActionPreference = 'Stop'
# .NET resolves relative paths against the process directory, not PowerShell's location: pass full paths.
$RequestFile = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($RequestFile)
if ($OutFile) { $OutFile = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($OutFile) }
$manifest = Get-Content -LiteralPath (Join-Path $PSScriptRoot 'entries.json') -Raw -Encoding UTF8 | ConvertFrom-Json
# No -Encoding: 5.1 then honours a byte-order mark (a request re-saved as UTF-16 by an editor still reads).
$action = [string](Get-Content -LiteralPath $RequestFile -Raw | ConvertFrom-Json).action
$entry = $manifest.actions.$action
if (-not $entry) { throw (New-Object System.ArgumentException("entries.json names no entry for the action '$action'")) }
$parts = @($manifest.entries.$entry | ForEach-Object { Get-Content -LiteralPath (Join-Path $PSScriptRoot $_) -Raw -Encoding UTF8 })
# Get-SelfText (tetra_collect.ps1) hands this same text to the LocalSystem task.
$TetraScript = ($parts | ForEach-Object { $_.Replace("`r`n", "`n") }) -join "`n"
& ([ScriptBlock]::Create($TetraScript)) -RequestFile $RequestFile -OutFile $OutFile
