# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The HTML fleet report: one self-contained page (inline CSS, JS and SVG, nothing fetched).

Rows are rendered here, escaped, so the page reads without JavaScript; the script only sorts
and filters. Every value that came from a host goes through ``esc``.
"""

from __future__ import annotations

import html
import typing as t

# Most urgent first: the order of summaries and of the table's default sort.
STATUS_ORDER = ('failing', 'unreachable', 'unknown', 'not_installed', 'stale', 'ok')
STATUS_COLOURS = {
    'failing': '#c62828', 'unreachable': '#6a1b9a', 'unknown': '#757575',
    'not_installed': '#ef6c00', 'stale': '#b8860b', 'ok': '#2e7d32',
}
_BAR_HEIGHT = 22
_LABEL_WIDTH = 210
_BAR_WIDTH = 300

_CSS = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa}
body{margin:0 auto;max-width:1400px;padding:1rem 2rem}
h1{font-size:1.5rem;margin:.2rem 0}.meta{color:#555;margin:.2rem 0 1rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1rem}
.card{border:0;border-radius:8px;padding:.6rem 1rem;min-width:7rem;color:#fff;cursor:pointer;text-align:left;font:inherit}
.card .count{display:block;font-size:1.6rem;font-weight:700}.card.total{background:#37474f}
.card[aria-pressed=true]{outline:3px solid #000}
.charts{display:flex;flex-wrap:wrap;gap:2rem}figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}
svg text{font-size:12px;fill:#1d1d1f}
.controls{display:flex;gap:.6rem;align-items:center;margin:1.2rem 0 .6rem}
.controls input{flex:1;max-width:28rem;padding:.35rem .5rem;font:inherit}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eceff1;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;color:#fff;font-size:.85rem;white-space:nowrap}
details summary{cursor:pointer;color:#0d47a1}details ul{margin:.3rem 0;padding-left:1.2rem}
.action{background:#fff8e1;border-left:3px solid #f9a825;padding:.3rem .5rem;margin:.3rem 0}
code,.mono{font-family:ui-monospace,Consolas,monospace;font-size:.85rem}
tr.hidden{display:none}
"""

_JS = """
(function(){
  var table=document.getElementById('host-table'),body=table.tBodies[0];
  var filter=document.getElementById('filter'),statusSel=document.getElementById('status-filter');
  var shown=document.getElementById('shown');
  function rows(){return Array.prototype.slice.call(body.rows);}
  function apply(){
    var q=filter.value.toLowerCase(),s=statusSel.value,n=0;
    rows().forEach(function(r){
      var ok=(!s||r.getAttribute('data-status')===s)&&(!q||r.textContent.toLowerCase().indexOf(q)>=0);
      r.classList.toggle('hidden',!ok);if(ok){n++;}
    });
    shown.textContent=n+' of '+body.rows.length+' hosts shown';
    document.querySelectorAll('.card').forEach(function(c){
      c.setAttribute('aria-pressed',String((c.getAttribute('data-status')||'')===s));});
  }
  function key(r,i,num){var v=r.cells[i].getAttribute('data-sort');
    if(num){var f=parseFloat(v);return isNaN(f)?Infinity:f;}return (v||'').toLowerCase();}
  table.tHead.rows[0].querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=th.getAttribute('aria-sort')!=='ascending',num=th.getAttribute('data-type')==='num';
      table.tHead.querySelectorAll('th').forEach(function(o){o.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      rows().sort(function(a,b){var x=key(a,i,num),y=key(b,i,num);
        return (x<y?-1:x>y?1:0)*(asc?1:-1);}).forEach(function(r){body.appendChild(r);});
    });
  });
  document.querySelectorAll('.card').forEach(function(c){c.addEventListener('click',function(){
    var s=c.getAttribute('data-status')||'';statusSel.value=(statusSel.value===s)?'':s;apply();});});
  filter.addEventListener('input',apply);statusSel.addEventListener('change',apply);apply();
})();
"""


def esc(value: t.Any) -> str:
    """Text or attribute value, HTML-escaped (quotes included)."""
    return html.escape('' if value is None else str(value), quote=True)


def colour(status: str) -> str:
    return STATUS_COLOURS.get(status, '#455a64')


def bar_chart(chart_id: str, counts: dict[str, int], colours: dict[str, str] | None = None) -> str:
    """A horizontal bar chart as inline SVG."""
    items = [(label, count) for label, count in counts.items() if count]
    top = max([count for label, count in items] or [1])
    height = max(len(items), 1) * _BAR_HEIGHT + 4
    width = _LABEL_WIDTH + _BAR_WIDTH + 50
    parts = ['<svg id="%s" role="img" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">'
             % (esc(chart_id), width, height, width, height)]
    for index, (label, count) in enumerate(items):
        y = index * _BAR_HEIGHT + 2
        length = max(int(_BAR_WIDTH * count / top), 2)
        fill = (colours or {}).get(label, '#1565c0')
        parts.append('<g class="bar" data-label="%s"><title>%s: %d</title>' % (esc(label), esc(label), count))
        parts.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (_LABEL_WIDTH - 6, y + 15, esc(label)))
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s"></rect>'
                     % (_LABEL_WIDTH, y, length, _BAR_HEIGHT - 6, fill))
        parts.append('<text x="%d" y="%d">%d</text></g>' % (_LABEL_WIDTH + length + 6, y + 15, count))
    parts.append('</svg>')
    return ''.join(parts)


def cards(summary: dict[str, t.Any]) -> str:
    parts = ['<button type="button" class="card total" data-status=""><span class="count">%d</span>hosts</button>'
             % summary['total']]
    for status, count in summary['by_status'].items():
        parts.append('<button type="button" class="card" data-status="%s" style="background:%s">'
                     '<span class="count" id="count-%s">%d</span>%s</button>'
                     % (esc(status), colour(status), esc(status), count, esc(status)))
    return '<section id="summary" class="cards">%s</section>' % ''.join(parts)


def details(record: dict[str, t.Any]) -> str:
    evidence = ''.join('<li>%s</li>' % esc(line) for line in record.get('evidence') or [])
    secondary = ''.join('<li><code>%s</code>: %s</li>' % (esc(item.get('cause')), esc(item.get('summary')))
                        for item in record.get('secondary') or [] if isinstance(item, dict))
    parts = ['<details><summary>evidence and action</summary>']
    parts.append('<ul class="evidence">%s</ul>' % (evidence or '<li>none</li>'))
    if record.get('action'):
        parts.append('<div class="action"><strong>Action:</strong> %s%s</div>' % (
            esc(record['action']), ' <em>(a forced update can fix this)</em>' if record.get('remediable') else ''))
    if secondary:
        parts.append('<div>Also found:<ul class="secondary">%s</ul></div>' % secondary)
    parts.append('</details>')
    return ''.join(parts)


def _cell(value: t.Any, sort: t.Any = None, css: str = '') -> str:
    sort_value = value if sort is None else sort
    return '<td%s data-sort="%s">%s</td>' % (' class="%s"' % css if css else '', esc(sort_value), esc(value))


def row(record: dict[str, t.Any]) -> str:
    versions = record.get('versions') or {}
    status = str(record.get('status'))
    rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
    cells = [
        _cell(record.get('host'), css='mono host'),
        '<td data-sort="%d"><span class="badge" style="background:%s">%s</span></td>' % (rank, colour(status), esc(status)),
        _cell(record.get('cause'), css='mono cause'),
        '<td data-sort="%s">%s%s</td>' % (esc(record.get('summary')), esc(record.get('summary')), details(record)),
        _cell(versions.get('connector')),
        _cell(versions.get('tetra'), sort=versions.get('tetra') if versions.get('tetra') is not None else ''),
        _cell(versions.get('behind'), sort=versions.get('behind') if versions.get('behind') is not None else ''),
        _cell(record.get('age_hours'), sort=record.get('age_hours') if record.get('age_hours') is not None else ''),
        _cell(record.get('checked_at')),
    ]
    return '<tr class="host-row" data-host="%s" data-status="%s" data-cause="%s">%s</tr>' % (
        esc(record.get('host')), esc(status), esc(record.get('cause')), ''.join(cells))


_HEADERS = (('Host', 'text'), ('Status', 'num'), ('Cause', 'text'), ('Summary, evidence and action', 'text'),
            ('Connector', 'text'), ('TETRA', 'num'), ('Behind', 'num'), ('Age (h)', 'num'), ('Checked at', 'text'))


def host_table(records: list[dict[str, t.Any]]) -> str:
    head = ''.join('<th data-type="%s">%s</th>' % (kind, esc(name)) for name, kind in _HEADERS)
    ordered = sorted(records, key=lambda r: (STATUS_ORDER.index(r['status']) if r['status'] in STATUS_ORDER
                                             else len(STATUS_ORDER), str(r['cause']), str(r['host'])))
    body = ''.join(row(record) for record in ordered)
    return '<table id="host-table"><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (head, body)


def controls(summary: dict[str, t.Any]) -> str:
    options = ''.join('<option value="%s">%s</option>' % (esc(s), esc(s)) for s in summary['by_status'])
    return ('<div class="controls"><input id="filter" type="search" placeholder="Filter by host, cause, evidence..."'
            ' aria-label="Filter hosts"><select id="status-filter" aria-label="Status"><option value="">all statuses'
            '</option>%s</select><span id="shown">%d hosts</span></div>' % (options, summary['total']))


def page(document: dict[str, t.Any]) -> str:
    summary = document['summary']
    meta = 'Generated %s &middot; %d hosts &middot; %d ok &middot; %d need action' % (
        esc(document['generated_at']), summary['total'], summary['ok'], summary['needs_action'])
    if document.get('fleet_max_version') is not None:
        meta += ' &middot; latest version unknown: compared with the highest seen in the run (%s)' % esc(document['fleet_max_version'])
    return ''.join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<title>%s</title><style>%s</style></head><body>' % (esc(document['title']), _CSS),
        '<header><h1>%s</h1><p class="meta" id="meta">%s</p></header>' % (esc(document['title']), meta),
        cards(summary),
        '<section class="charts"><figure><figcaption>Hosts by status</figcaption>%s</figure>'
        % bar_chart('chart-status', summary['by_status'], STATUS_COLOURS),
        '<figure><figcaption>Hosts by cause</figcaption>%s</figure></section>' % bar_chart('chart-cause', summary['by_cause']),
        '<section id="hosts">%s%s</section>' % (controls(summary), host_table(document['hosts'])),
        '<script>%s</script></body></html>\n' % _JS,
    ])
