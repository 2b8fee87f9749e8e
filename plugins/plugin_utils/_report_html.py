# Copyright: Contributors to the secure_endpoint.tetra collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The HTML fleet report: one self-contained page (inline CSS, JS and SVG, nothing fetched).

Rows are rendered here, escaped, so the page reads without JavaScript; the script only sorts
and filters. Every value that came from a host goes through ``esc``.
"""

from __future__ import annotations

import html
import typing as t

from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._common import status_rank
from ansible_collections.secure_endpoint.tetra.plugins.plugin_utils._text import printable

STATUS_COLOURS = {
    'failing': '#c62828', 'unreachable': '#6a1b9a', 'unknown': '#757575',
    'not_installed': '#ef6c00', 'stale': '#b8860b', 'ok': '#2e7d32',
}
_BAR_HEIGHT = 22
_LABEL_WIDTH = 210
_BAR_WIDTH = 300

_CSS = """
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1400px;padding:1rem 2rem;overflow-wrap:anywhere}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .5rem}.meta{color:#555;margin:.2rem 0 .4rem}
#run{display:flex;flex-wrap:wrap;gap:.2rem 1.2rem;margin:0 0 1rem;color:#444;font-size:.9rem}
#run div{display:flex;gap:.3rem}#run dt{font-weight:600}#run dd{margin:0}
#plan .plan-group{background:#fff;border:1px solid #ddd;border-left:4px solid #c62828;border-radius:6px;padding:.5rem .8rem;margin:.5rem 0}
.plan-group h3{font-size:1rem;margin:0 0 .3rem}.plan-group .team{font-weight:600}
.plan-group .plan-hosts{font-family:ui-monospace,Consolas,monospace;font-size:.85rem;color:#333}
.plan-group button,.controls button{font:inherit;font-size:.85rem;cursor:pointer}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1rem}
.card{border:0;border-radius:8px;padding:.6rem 1rem;min-width:7rem;color:#fff;cursor:pointer;text-align:left;font:inherit}
.card .count{display:block;font-size:1.6rem;font-weight:700}.card.total{background:#37474f}
.card[aria-pressed=true]{outline:3px solid #000}
.charts{display:flex;flex-wrap:wrap;gap:2rem}figure{margin:0;flex:1 1 22rem;min-width:0;max-width:36rem}
figcaption{font-weight:600;margin-bottom:.3rem}
figure svg{width:100%;height:auto;display:block}
svg text{font-size:12px;fill:#1d1d1f}svg .bar{cursor:pointer}svg .bar:hover rect,svg .bar.active rect{stroke:#000;stroke-width:2}
.controls{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:1.2rem 0 .6rem}
.controls input{flex:1 1 12rem;max-width:28rem;padding:.35rem .5rem;font:inherit;min-width:0}
.controls select{max-width:100%;font:inherit}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eceff1;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;color:#fff;font-size:.85rem;white-space:nowrap}
.yes{color:#1b5e20;font-weight:600}
details summary{cursor:pointer;color:#0d47a1}details ul{margin:.3rem 0;padding-left:1.2rem}
.action{background:#fff8e1;border-left:3px solid #f9a825;padding:.3rem .5rem;margin:.3rem 0}
code,.mono{font-family:ui-monospace,Consolas,monospace;font-size:.85rem}
tr.hidden{display:none}
@media (max-width:700px){
  body{padding:.5rem}h1{font-size:1.2rem}.card{min-width:5.5rem;padding:.4rem .6rem}.card .count{font-size:1.2rem}
  th,td{padding:.25rem .3rem;font-size:.85rem}.charts{gap:1rem}
}
"""

_JS = """
(function(){
  var table=document.getElementById('host-table'),body=table.tBodies[0];
  var filter=document.getElementById('filter'),statusSel=document.getElementById('status-filter');
  var causeSel=document.getElementById('cause-filter'),shown=document.getElementById('shown');
  var hostSet=null;
  function rows(){return Array.prototype.slice.call(body.rows);}
  function apply(){
    var q=filter.value.toLowerCase().trim(),s=statusSel.value,c=causeSel.value,n=0;
    rows().forEach(function(r){
      var ok=(!s||r.getAttribute('data-status')===s)&&(!c||r.getAttribute('data-cause')===c)
        &&(!hostSet||hostSet[r.getAttribute('data-host')])
        &&(!q||(r.getAttribute('data-search')||'').indexOf(q)>=0);
      r.classList.toggle('hidden',!ok);if(ok){n++;}
    });
    shown.textContent=n+' of '+body.rows.length+' hosts shown';
    document.querySelectorAll('.card').forEach(function(el){
      el.setAttribute('aria-pressed',String((el.getAttribute('data-status')||'')===s));});
    document.querySelectorAll('#chart-cause .bar').forEach(function(b){
      b.classList.toggle('active',!!c&&b.getAttribute('data-label')===c);});
    document.querySelectorAll('#chart-status .bar').forEach(function(b){
      b.classList.toggle('active',!!s&&b.getAttribute('data-label')===s);});
  }
  function key(r,i,num){var v=r.cells[i].getAttribute('data-sort')||'';
    if(v===''){return null;}if(num){var f=parseFloat(v);return isNaN(f)?null:f;}return v.toLowerCase();}
  table.tHead.rows[0].querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=th.getAttribute('aria-sort')!=='ascending',num=th.getAttribute('data-type')==='num';
      table.tHead.querySelectorAll('th').forEach(function(o){o.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      rows().sort(function(a,b){var x=key(a,i,num),y=key(b,i,num);
        if(x===null&&y===null){return 0;}if(x===null){return 1;}if(y===null){return -1;}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);}).forEach(function(r){body.appendChild(r);});
    });
  });
  function pick(sel,value){sel.value=(sel.value===value)?'':value;hostSet=null;apply();}
  document.querySelectorAll('.card').forEach(function(el){el.addEventListener('click',function(){
    pick(statusSel,el.getAttribute('data-status')||'');});});
  document.querySelectorAll('#chart-cause .bar').forEach(function(b){b.addEventListener('click',function(){
    pick(causeSel,b.getAttribute('data-label'));});});
  document.querySelectorAll('#chart-status .bar').forEach(function(b){b.addEventListener('click',function(){
    pick(statusSel,b.getAttribute('data-label'));});});
  document.querySelectorAll('.plan-filter').forEach(function(btn){btn.addEventListener('click',function(){
    hostSet={};btn.getAttribute('data-hosts').split(' ').forEach(function(h){hostSet[h]=true;});
    statusSel.value='';causeSel.value='';filter.value='';apply();table.scrollIntoView();});});
  document.getElementById('clear').addEventListener('click',function(){
    hostSet=null;statusSel.value='';causeSel.value='';filter.value='';apply();});
  filter.addEventListener('input',apply);statusSel.addEventListener('change',apply);
  causeSel.addEventListener('change',function(){hostSet=null;apply();});apply();
})();
"""


def esc(value: t.Any) -> str:
    """Text or attribute value, HTML-escaped (quotes included)."""
    return html.escape(printable('' if value is None else str(value)), quote=True)


def colour(status: str) -> str:
    return STATUS_COLOURS.get(status, '#455a64')


def bar_chart(chart_id: str, counts: dict[str, int], colours: dict[str, str] | None = None, what: str = 'status') -> str:
    """A horizontal bar chart as inline SVG; it scales to its box (viewBox) and each bar filters the table."""
    items = [(label, count) for label, count in counts.items() if count]
    top = max([count for label, count in items] or [1])
    height = max(len(items), 1) * _BAR_HEIGHT + 4
    width = _LABEL_WIDTH + _BAR_WIDTH + 50
    parts = ['<svg id="%s" role="img" width="%d" height="%d" viewBox="0 0 %d %d" preserveAspectRatio="xMinYMin meet" '
             'xmlns="http://www.w3.org/2000/svg">' % (esc(chart_id), width, height, width, height)]
    for index, (label, count) in enumerate(items):
        y = index * _BAR_HEIGHT + 2
        length = max(int(_BAR_WIDTH * count / top), 2)
        fill = (colours or {}).get(label, '#1565c0')
        parts.append('<g class="bar" data-label="%s" role="button" tabindex="0"><title>%s: %d (click to show these hosts by %s)</title>'
                     % (esc(label), esc(label), count, esc(what)))
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


_RUN_LABELS = (('inventory', 'Inventory'), ('limit', 'Limit'), ('ansible_core', 'ansible-core'), ('collection', 'Collection'),
               ('started', 'Started'), ('duration_s', 'Duration'), ('check_mode', 'Check mode'))


def _duration(seconds: t.Any) -> str:
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        return ''
    return '%d min %02d s' % divmod(value, 60) if value >= 60 else '%d s' % value


def run_metadata(run: dict[str, t.Any]) -> str:
    """Inventory, versions, start time and duration of the run that made the report."""
    items = []
    for name, label in _RUN_LABELS:
        value = run.get(name)
        if value in (None, '', [], False):
            continue
        text = _duration(value) if name == 'duration_s' else ('yes' if value is True else value)
        items.append('<div><dt>%s</dt><dd data-run="%s">%s</dd></div>' % (esc(label), esc(name), esc(text)))
    return '<dl id="run">%s</dl>' % ''.join(items) if items else ''


def plan_section(plan: list[dict[str, t.Any]]) -> str:
    """The action plan: one block per group of hosts that share a cause and an attribute, biggest first."""
    if not plan:
        return ('<section id="plan"><h2>Action plan</h2><p class="meta">Nothing to do: every host is up to date.</p></section>')
    blocks = []
    for group in plan:
        hosts = [str(host) for host in group.get('hosts') or []]
        shared = group.get('shared')
        shared_text = ('all using %s <code>%s</code>' % (esc(shared.get('label')), esc(shared.get('value')))
                       if shared else 'no shared proxy, DNS server, update server, issuer, policy or subnet known')
        listed = ', '.join(esc(host) for host in hosts[:30]) + (' and %d more' % (len(hosts) - 30) if len(hosts) > 30 else '')
        blocks.append(
            '<article class="plan-group" data-cause="%s" data-team="%s" style="border-left-color:%s">'
            '<h3><code>%s</code>: %d host%s, %s &rarr; <span class="team">%s</span></h3>'
            '<div class="action"><strong>Action:</strong> %s%s</div>'
            '<div class="plan-hosts">%s</div>'
            '<button type="button" class="plan-filter" data-hosts="%s">show these hosts</button></article>'
            % (esc(group.get('cause')), esc(group.get('team')), colour(str(group.get('status'))),
               esc(group.get('cause')), len(hosts), '' if len(hosts) == 1 else 's', shared_text, esc(group.get('team_label')),
               esc(group.get('action')), ' <em>(a forced update can fix this: playbooks/remediate.yml)</em>' if group.get('remediable') else '',
               listed, esc(' '.join(hosts))))
    return '<section id="plan"><h2>Action plan (%d groups, one action each)</h2>%s</section>' % (len(plan), ''.join(blocks))


def details(record: dict[str, t.Any]) -> str:
    evidence = ''.join('<li>%s</li>' % esc(line) for line in record.get('evidence') or [])
    secondary = ''.join('<li><code>%s</code>: %s</li>' % (esc(item.get('cause')), esc(item.get('summary')))
                        for item in record.get('secondary') or [] if isinstance(item, dict))
    parts = ['<details><summary>evidence and action</summary>']
    parts.append('<ul class="evidence">%s</ul>' % (evidence or '<li>none</li>'))
    if record.get('action'):
        parts.append('<div class="action"><strong>Action:</strong> %s</div>' % esc(record['action']))
    if secondary:
        parts.append('<div>Also found:<ul class="secondary">%s</ul></div>' % secondary)
    parts.append('</details>')
    return ''.join(parts)


def _cell(value: t.Any, sort: t.Any = None, css: str = '') -> str:
    sort_value = value if sort is None else sort
    return '<td%s data-sort="%s">%s</td>' % (' class="%s"' % css if css else '', esc(sort_value), esc(value))


def _blank(value: t.Any) -> t.Any:
    return '' if value is None else value


def row(record: dict[str, t.Any]) -> str:
    versions = record.get('versions') or {}
    status = str(record.get('status'))
    rank = status_rank(status)
    remediable = 'yes' if record.get('remediable') else ''
    visible = [record.get('host'), status, record.get('cause'), 'remediable' if remediable else '', record.get('summary'),
               versions.get('connector'), versions.get('tetra'), versions.get('behind'), record.get('age_hours'),
               record.get('checked_at')]
    cells = [
        _cell(record.get('host'), css='mono host'),
        '<td data-sort="%d"><span class="badge" style="background:%s">%s</span></td>' % (rank, colour(status), esc(status)),
        _cell(record.get('cause'), css='mono cause'),
        '<td class="remediable" data-sort="%s">%s</td>' % (remediable, '<span class="yes">yes</span>' if remediable else ''),
        '<td data-sort="%s">%s%s</td>' % (esc(record.get('summary')), esc(record.get('summary')), details(record)),
        _cell(_blank(versions.get('connector'))),
        _cell(_blank(versions.get('tetra'))),
        _cell(_blank(versions.get('behind'))),
        _cell(_blank(record.get('age_hours'))),
        _cell(_blank(record.get('checked_at'))),
    ]
    search = ' '.join(str(value) for value in visible if value not in (None, '')).lower()
    return '<tr class="host-row" data-host="%s" data-status="%s" data-cause="%s" data-search="%s">%s</tr>' % (
        esc(record.get('host')), esc(status), esc(record.get('cause')), esc(search), ''.join(cells))


_HEADERS = (('Host', 'text'), ('Status', 'num'), ('Cause', 'text'), ('Remediable', 'text'), ('Summary, evidence and action', 'text'),
            ('Connector', 'text'), ('TETRA', 'num'), ('Behind', 'num'), ('Age (h)', 'num'), ('Checked at', 'text'))


def host_table(records: list[dict[str, t.Any]]) -> str:
    head = ''.join('<th data-type="%s">%s</th>' % (kind, esc(name)) for name, kind in _HEADERS)
    ordered = sorted(records, key=lambda r: (status_rank(r['status']), str(r['cause']), str(r['host'])))
    body = ''.join(row(record) for record in ordered)
    return '<div class="table-wrap"><table id="host-table"><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>' % (head, body)


def controls(summary: dict[str, t.Any]) -> str:
    statuses = ''.join('<option value="%s">%s</option>' % (esc(s), esc(s)) for s in summary['by_status'])
    causes = ''.join('<option value="%s">%s</option>' % (esc(c), esc(c)) for c in summary['by_cause'])
    return ('<div class="controls"><input id="filter" type="search" placeholder="Search host, status, cause, summary..."'
            ' aria-label="Search the visible fields"><select id="status-filter" aria-label="Status"><option value="">all statuses'
            '</option>%s</select><select id="cause-filter" aria-label="Cause"><option value="">all causes</option>%s</select>'
            '<button type="button" id="clear">clear filters</button><span id="shown">%d hosts</span></div>'
            % (statuses, causes, summary['total']))


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
        '<header><h1>%s</h1><p class="meta" id="meta">%s</p>%s</header>' % (
            esc(document['title']), meta, run_metadata(document.get('run') or {})),
        plan_section(document.get('plan') or []),
        '<h2>Summary</h2>',
        cards(summary),
        '<section class="charts"><figure><figcaption>Hosts by status</figcaption>%s</figure>'
        % bar_chart('chart-status', summary['by_status'], STATUS_COLOURS, 'status'),
        '<figure><figcaption>Hosts by cause (click a bar to filter)</figcaption>%s</figure></section>'
        % bar_chart('chart-cause', summary['by_cause'], what='cause'),
        '<section id="hosts"><h2>Hosts</h2>%s%s</section>' % (controls(summary), host_table(document['hosts'])),
        '<script>%s</script></body></html>\n' % _JS,
    ])
