// ringkv web console. Polls /ui/data once a second (the next poll starts a
// second after the last one ended, so a slow node is never asked twice at
// once) and redraws: members, the ring, progress and request rates. Rates
// and latency percentiles come from the differences between running totals
// of polls in the last RATE_WINDOW_MS, as Prometheus' rate() and
// histogram_quantile() compute them; the node keeps no rate of its own.
'use strict';

const POLL_MS = 1000;
const RATE_WINDOW_MS = 10000;
/** Polls kept for rates and the sparkline: two minutes at one a second. */
const HISTORY = 120;
const TOKEN_KEY = 'ringkv-token';
const SVG_NS = 'http://www.w3.org/2000/svg';
/** Tableau 10: distinct for the first ten members; more get golden-angle hues. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2',
  '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
/** Member statuses whose vnodes still serve: drawn in full colour. */
const SERVING = new Set(['up', 'read-only', 'joining', 'leaving']);
/** A range in sync with a partner this recently counts as synced. */
const SYNCED_RECENTLY_MS = 120000;
const CIRCLE = 18446744073709551616; // 2^64 tokens

/** Polls kept: `{t, requests: Map, stats, ae}` in arrival order. */
const polls = [];
let timer = null;
let ringDrawn = '';

const byId = (id) => document.getElementById(id);

/** An HTML element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** An SVG element with attributes. */
function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// ---------------------------------------------------------------- polling

function schedule() {
  if (timer === null) timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  timer = null;
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  let answer;
  try {
    answer = await fetch('/ui/data', { headers, cache: 'no-store' });
  } catch (error) {
    connection('unreachable', 'node unreachable');
    return schedule();
  }
  if (answer.status === 401 || answer.status === 403) {
    askForToken((await answer.text()).trim());
    return; // Polling resumes when a token is entered.
  }
  if (!answer.ok) {
    connection('error', `${answer.status}: ${(await answer.text()).trim()}`);
    return schedule();
  }
  try {
    render(await answer.json());
    connection('live', 'live');
  } catch (error) {
    connection('error', 'cannot show the answer: ' + error.message);
  }
  schedule();
}

/** The connection badge; anything but live greys the page out as stale. */
function connection(state, text) {
  const badge = byId('connection');
  badge.className = 'badge ' + state;
  badge.textContent = text;
  document.body.classList.toggle('stale', state !== 'live');
}

// ------------------------------------------------------------------ token

function askForToken(reason) {
  connection('error', 'needs a token');
  byId('token-reason').textContent = reason;
  byId('token-form').hidden = false;
  byId('token').focus();
}

function useToken(event) {
  event.preventDefault();
  const token = byId('token').value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  byId('token').value = '';
  byId('token-form').hidden = true;
  byId('forget-token').hidden = !token;
  poll();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  byId('forget-token').hidden = true;
  if (timer !== null) clearTimeout(timer);
  poll();
}

// ------------------------------------------------------------- rendering

function render(data) {
  const status = data.status;
  remember(data);
  const colours = memberColours(status.members);
  renderHeader(status);
  renderMembers(status, colours);
  renderRing(data, colours);
  renderProgress(status);
  renderRequests();
  renderCounters();
}

function renderHeader(s) {
  byId('node-name').textContent = s.node;
  byId('cluster').textContent = `cluster ${s.cluster} · N=${s.n} R=${s.r} W=${s.w}`;
  const ready = byId('readiness');
  ready.className = 'badge ' + (s.not_ready ? 'not-ready' : 'ready');
  ready.textContent = s.not_ready ? 'not ready: ' + s.not_ready : 'ready';
  document.title = `ringkv ${s.node}`;
}

/** Each member's colour, by its place among the members sorted by id. */
function memberColours(members) {
  const ids = members.map((m) => m.id).sort();
  const colours = new Map();
  ids.forEach((id, i) => {
    colours.set(id, i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.5) % 360} 55% 50%)`);
  });
  return colours;
}

// A joining or leaving member that died says so (its status alone would not).
function statusText(m) {
  const moving = m.status === 'joining' || m.status === 'leaving';
  return moving && m.liveness && m.liveness !== 'up' ? `${m.status} (${m.liveness})` : m.status;
}

function renderMembers(s, colours) {
  const rows = s.members.map((m) => {
    const name = el('td', {}, el('span', { class: 'swatch' }), m.id);
    name.firstChild.style.background = colours.get(m.id);
    name.title = `generation ${m.generation}`;
    const notes = [m.read_only ? 'store failed' : '', m.settings_mismatch || '',
      m.replaces ? 'replaces ' + m.replaces : ''].filter(Boolean).join('; ');
    const row = el('tr', { 'data-member': m.id, 'data-status': m.status },
      name,
      el('td', { class: 'status status-' + m.status, title: notes }, statusText(m)),
      el('td', { class: 'suspected-by' }, m.suspected_by.join(', ') || '—'),
      el('td', {}, m.zone || '—'),
      el('td', { class: 'num' }, percent(m.ownership)),
      el('td', { class: 'num' }, String(s.pending_hints[m.id] || 0)),
      el('td', {}, m.http && SERVING.has(m.status) ? el('a', { href: `http://${m.http}/ui` }, m.http) : (m.http || '—')));
    if (m.id === s.node) row.classList.add('self');
    return row;
  });
  byId('members-body').replaceChildren(...rows);
  const unreachable = s.unreachable_peers.length ? s.unreachable_peers.join(', ') : 'none';
  const fault = s.store_fault ? ` · store failed: ${JSON.stringify(s.store_fault)}` : '';
  byId('node-facts').textContent = `${s.node} stores ${count(s.stored_keys)} keys ` +
    `(${bytes(s.stored_bytes)}) · ${s.in_flight} operations in flight · ` +
    `unreachable peers: ${unreachable}${fault}`;
}

// ------------------------------------------------------------------- ring

/** The point at `fraction` of the circle, radius `r`, clockwise from the top. */
function point(fraction, r) {
  const angle = fraction * 2 * Math.PI - Math.PI / 2;
  return `${(r * Math.cos(angle)).toFixed(3)} ${(r * Math.sin(angle)).toFixed(3)}`;
}

/** The path of the ring segment from `from` to `to` (fractions), radii r1 > r2. */
function arc(from, to, r1, r2) {
  let span = to - from;
  if (span <= 0) span += 1;
  if (span >= 0.999999) return arc(0, 0.5, r1, r2) + ' ' + arc(0.5, 1, r1, r2);
  const end = from + span;
  const large = span > 0.5 ? 1 : 0;
  return `M ${point(from, r1)} A ${r1} ${r1} 0 ${large} 1 ${point(end, r1)} ` +
    `L ${point(end, r2)} A ${r2} ${r2} 0 ${large} 0 ${point(from, r2)} Z`;
}

function renderRing(data, colours) {
  const s = data.status;
  const statusOf = new Map(s.members.map((m) => [m.id, m.status]));
  const key = s.ring_fingerprint + JSON.stringify([...statusOf]) +
    JSON.stringify(s.anti_entropy.ranges.map((r) => rangeState(r)));
  if (key === ringDrawn) return;
  ringDrawn = key;
  const ring = byId('ring');
  const shapes = [];
  const vnodes = data.vnodes;
  vnodes.forEach(([at, owner], i) => {
    const previous = vnodes[(i + vnodes.length - 1) % vnodes.length][0];
    const path = svgEl('path', {
      d: arc(previous, at, 100, 82),
      fill: colours.get(owner) || '#999',
      class: 'vnode' + (SERVING.has(statusOf.get(owner)) ? '' : ' faded'),
      'data-owner': owner,
    });
    path.append(svgEl('title'));
    path.firstChild.textContent = `vnode of ${owner} (${statusOf.get(owner) || 'not a member'})`;
    shapes.push(path);
  });
  for (const range of s.anti_entropy.ranges) {
    shapes.push(svgEl('path', {
      d: arc(range.start / CIRCLE, range.end / CIRCLE, 76, 68),
      class: 'range ' + rangeState(range),
    }));
  }
  const title = svgEl('text', { class: 'big', y: -4 });
  const gone = new Set(['left', 'removed']);
  title.textContent = `${s.members.filter((m) => !gone.has(m.status)).length} members`;
  const sub = svgEl('text', { y: 8 });
  sub.textContent = `${vnodes.length} vnodes · ${s.vnodes_per_node} per node`;
  const print = svgEl('text', { y: 18 });
  print.textContent = 'ring ' + s.ring_fingerprint;
  ring.replaceChildren(...shapes, title, sub, print);
  renderLegend(s, colours);
}

function rangeState(range) {
  if (range.synced_ms_ago === null) return 'never';
  return range.synced_ms_ago <= SYNCED_RECENTLY_MS ? 'synced' : 'stale';
}

function renderLegend(s, colours) {
  const items = s.members.map((m) => {
    const swatch = el('span', { class: 'swatch' });
    swatch.style.background = colours.get(m.id);
    const share = s.ring[m.id];
    const vnodes = share ? `${share.vnodes} vnodes, ${percent(share.ownership)}` : 'no vnodes';
    return el('li', {}, swatch, `${m.id} · ${m.status} · ${vnodes}`);
  });
  byId('legend').replaceChildren(...items);
}

// --------------------------------------------------------------- progress

function renderProgress(s) {
  const ae = s.anti_entropy;
  const synced = ae.ranges.filter((r) => r.synced_ms_ago !== null).length;
  const blocks = [
    el('h3', {}, 'Ownership handoff'),
    s.handoff ? facts([
      ['ranges fetched', bar(s.handoff.ranges_done, s.handoff.ranges_total,
        `${s.handoff.ranges_done} of ${s.handoff.ranges_total} (${s.handoff.percent}%)`)],
      ['received', `${count(s.handoff.keys)} keys, ${bytes(s.handoff.bytes)}`],
      ['dropped after hand-over', count(s.handoff.keys_dropped)],
    ]) : el('p', { class: 'facts' }, 'none in progress'),
    el('h3', {}, 'Anti-entropy'),
    facts([
      ['ranges in sync since start', bar(synced, ae.ranges.length, `${synced} of ${ae.ranges.length}`)],
      ['exchanges', `${count(ae.exchanges_started)} started, ${count(ae.exchanges_completed)} completed ` +
        `(${count(ae.exchanges_in_sync)} already in sync), ${count(ae.exchanges_failed)} failed`],
      ['keys repaired here', `${count(ae.keys_repaired)} (${rate('ae', 'keys_repaired')}/s)`],
      ['keys sent to peers', `${count(ae.keys_sent)}, ${bytes(ae.bytes_sent)}`],
      ['forced repair', ae.repair ? bar(ae.repair.done, ae.repair.total,
        `${ae.repair.done} of ${ae.repair.total} exchanges, ${ae.repair.failed} failed`) : 'none'],
    ]),
    el('h3', {}, 'Hinted handoff'),
    facts([
      ['hints held here', `${count(s.pending_hints_total)} (${bytes(s.pending_hint_bytes)})`],
      ['held for', Object.entries(s.pending_hints).map(([id, n]) => `${id}: ${n}`).join(', ') || '—'],
      ['stored', `${count(s.stats.hints_stored)} (${rate('stats', 'hints_stored')}/s)`],
      ['delivered', `${count(s.stats.hints_delivered)} (${rate('stats', 'hints_delivered')}/s)`],
      ['dropped', count(s.stats.hints_dropped)],
    ]),
  ];
  byId('progress').replaceChildren(...blocks);
}

/** A definition list of `[term, text or element]` pairs. */
function facts(pairs) {
  const list = el('dl');
  for (const [term, value] of pairs) list.append(el('dt', {}, term), el('dd', {}, value));
  return list;
}

/** A progress bar with its text. */
function bar(done, total, text) {
  const meter = el('progress', { max: String(Math.max(total, 1)), value: String(done) });
  return el('span', {}, meter, ' ', text);
}

// ----------------------------------------------------------- rates, latency

/** Keep this poll's running totals; a counter that went back means the node restarted. */
function remember(data) {
  const requests = new Map(data.requests.map((r) => [`${r.frontend} ${r.op}`, r]));
  const sample = { t: data.now_ms, requests, stats: data.status.stats, ae: data.status.anti_entropy };
  const last = polls[polls.length - 1];
  if (last && (sample.t <= last.t || sample.stats.coordinated < last.stats.coordinated)) {
    polls.length = 0;
  }
  polls.push(sample);
  if (polls.length > HISTORY) polls.shift();
}

/** The newest poll and the oldest one within the rate window, or null. */
function rateSpan() {
  const newest = polls[polls.length - 1];
  const oldest = polls.find((s) => newest.t - s.t <= RATE_WINDOW_MS);
  return oldest && oldest !== newest ? [oldest, newest] : null;
}

/** Per-second rate of `group`'s counter `name` (stats, ae) over the window. */
function rate(group, name) {
  const span = rateSpan();
  if (!span) return '…';
  const [a, b] = span;
  return perSecond(b[group][name] - a[group][name], b.t - a.t);
}

function perSecond(delta, ms) {
  const value = (delta * 1000) / ms;
  return value < 10 ? value.toFixed(1) : String(Math.round(value));
}

const total = (r) => Object.values(r.outcomes).reduce((a, b) => a + b, 0);
const errors = (r) => total(r) - (r.outcomes.ok || 0);

function renderRequests() {
  const span = rateSpan();
  const newest = polls[polls.length - 1];
  const rows = [];
  for (const [key, now] of newest.requests) {
    if (total(now) === 0) continue;
    const before = span ? span[0].requests.get(key) : undefined;
    rows.push(requestRow(key, now, before, span ? span[1].t - span[0].t : 0));
  }
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: '8', class: 'facts' }, 'no client requests yet')));
  byId('requests-body').replaceChildren(...rows);
  renderSpark();
}

function requestRow(key, now, before, ms) {
  const [frontend, op] = key.split(' ');
  const cells = ['…', '…', '…', '…', '…'];
  if (before && ms > 0) {
    const timed = now.timed - before.timed;
    const buckets = now.buckets.map(([le, n], i) => [le, n - (before.buckets[i] ? before.buckets[i][1] : 0)]);
    cells[0] = perSecond(total(now) - total(before), ms);
    cells[1] = perSecond(errors(now) - errors(before), ms);
    cells[2] = timed > 0 ? seconds((now.seconds - before.seconds) / timed) : '—';
    cells[3] = seconds(quantile(0.5, buckets, timed));
    cells[4] = seconds(quantile(0.99, buckets, timed));
  }
  return el('tr', { 'data-op': key },
    el('td', {}, frontend), el('td', {}, op),
    ...cells.map((text) => el('td', { class: 'num' }, text)),
    el('td', { class: 'num total' }, String(total(now))));
}

/**
 * The q-quantile of `timed` observations in cumulative `buckets`
 * (`[upper bound, count]`), interpolated linearly inside its bucket as
 * Prometheus' histogram_quantile does; Infinity past the last bound.
 */
function quantile(q, buckets, timed) {
  if (timed <= 0) return null;
  const rank = q * timed;
  let lower = 0;
  let below = 0;
  for (const [le, n] of buckets) {
    if (n >= rank) return n > below ? lower + ((le - lower) * (rank - below)) / (n - below) : le;
    lower = le;
    below = n;
  }
  return Infinity;
}

/** Requests per second of every front end and op, poll to poll, as a line. */
function renderSpark() {
  const points = [];
  for (let i = 1; i < polls.length; i++) {
    const [a, b] = [polls[i - 1], polls[i]];
    let delta = 0;
    for (const [key, r] of b.requests) delta += total(r) - (a.requests.has(key) ? total(a.requests.get(key)) : 0);
    points.push([b.t, (delta * 1000) / (b.t - a.t)]);
  }
  const spark = byId('spark');
  if (points.length < 2) return spark.replaceChildren();
  const top = Math.max(1, ...points.map((p) => p[1]));
  const [t0, t1] = [points[0][0], points[points.length - 1][0]];
  const xy = points.map(([t, v]) => `${(((t - t0) / Math.max(t1 - t0, 1)) * 300).toFixed(1)},${(38 - (v / top) * 34).toFixed(1)}`);
  spark.replaceChildren(svgEl('polyline', { points: xy.join(' ') }));
  byId('spark-peak').textContent = `peak ${perSecond(top, 1000)} req/s over the last ${points.length} s`;
}

const COUNTERS = [
  ['coordinated', 'operations coordinated'],
  ['forwarded', 'requests forwarded'],
  ['read_repairs', 'read repairs'],
  ['unavailable', 'quorum failures'],
  ['hinted_writes', 'writes sent to stand-ins'],
];

function renderCounters() {
  const stats = polls[polls.length - 1].stats;
  const rows = COUNTERS.map(([name, text]) => el('tr', { 'data-counter': name },
    el('td', {}, text), el('td', { class: 'num' }, rate('stats', name)),
    el('td', { class: 'num' }, count(stats[name]))));
  byId('counters-body').replaceChildren(...rows);
}

// ------------------------------------------------------------ formatting

function percent(share) {
  return (share * 100).toFixed(1) + '%';
}

function count(n) {
  return Number(n).toLocaleString('en');
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** Seconds as a short latency: µs, ms or s. */
function seconds(value) {
  if (value === null) return '—';
  if (value === Infinity) return '> 10 s';
  if (value < 0.001) return `${Math.round(value * 1e6)} µs`;
  if (value < 1) return `${(value * 1000).toPrecision(2)} ms`;
  return `${value.toPrecision(2)} s`;
}

// ------------------------------------------------------------------ start

document.addEventListener('DOMContentLoaded', () => {
  byId('token-form').addEventListener('submit', useToken);
  byId('forget-token').addEventListener('click', forgetToken);
  byId('forget-token').hidden = !sessionStorage.getItem(TOKEN_KEY);
  poll();
});
