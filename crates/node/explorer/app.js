// The Block explorer: one page that reads the node's public JSON-RPC (POST to the same
// origin) and its WebSocket subscriptions, and routes in the browser
// (#/job/<id>, #/blocks?page=2, ...). Every value read from the chain reaches the page
// as text (DOM nodes, never HTML strings), so nothing on chain can inject markup.
'use strict';

const PAGE = 25; // rows per list page
const PAGE_MAX = 1e9; // larger page numbers are refused before any request
const RPC_URL = new URL('/', location.href).href;
const WS_URL = RPC_URL.replace(/^http/, 'ws');
const ERR_NOT_FOUND = -32011;
const ERR_PARAMS = -32602;
const HEX64 = /^[0-9a-f]{64}$/;

// ---------------------------------------------------------------- JSON-RPC

class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

let nextId = 1;

async function post(body) {
  let r;
  try {
    r = await fetch(RPC_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new RpcError(0, `the node did not answer (${e.message})`);
  }
  if (!r.ok) throw new RpcError(r.status, `the node answered HTTP ${r.status}`);
  return r.json();
}

async function rpc(method, params = []) {
  const j = await post({ jsonrpc: '2.0', id: nextId++, method, params });
  if (j.error) throw new RpcError(j.error.code, j.error.message, j.error.data);
  return j.result;
}

// Several calls in one request; each entry is {result} or {error}.
async function batch(calls) {
  if (calls.length === 0) return [];
  const first = nextId;
  const body = calls.map(([method, params], i) => ({ jsonrpc: '2.0', id: first + i, method, params }));
  nextId += calls.length;
  const answers = await post(body);
  const byId = new Map((Array.isArray(answers) ? answers : [answers]).map((a) => [a.id, a]));
  return body.map((c) => byId.get(c.id) || { error: { code: 0, message: 'no answer' } });
}

// ---------------------------------------------------------------- DOM and formats

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

const short = (hex) => (typeof hex === 'string' && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : String(hex));
const link = (route, text, title) => h('a', { href: `#/${route}`, title: title || null }, text);
const blockLink = (x) => link(`block/${x}`, typeof x === 'number' ? `#${x}` : short(x), String(x));
const txLink = (id) => link(`tx/${id}`, short(id), id);
const jobLink = (id) => link(`job/${id}`, short(id), id);
const accountLink = (a) => (a ? link(`account/${encodeURIComponent(a)}`, short(a), a) : '—');
const providerLink = (a) => link(`provider/${encodeURIComponent(a)}`, short(a), a);
const hexCell = (x) => (x ? h('code', { title: x }, short(x)) : '—');
const full = (x) => (x === null || x === undefined ? '—' : h('code', { class: 'full' }, String(x)));

function tokens(micro) {
  if (micro === null || micro === undefined) return '—';
  const n = Number(micro);
  const whole = Math.floor(n / 1e6);
  const frac = String(n % 1e6).padStart(6, '0').replace(/0+$/, '');
  return `${whole.toLocaleString('en-US')}${frac ? `.${frac}` : ''}`;
}
const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
const when = (ms) => (ms ? new Date(Number(ms)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)} %`);

function hashRate(perSecond) {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s'];
  let v = perSecond;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'muted empty' }, empty || 'Nothing here yet.');
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c)))))));
}

// A definition list of [term, value] pairs; each row carries data-field for tests.
function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [
    h('dt', {}, k), h('dd', { 'data-field': k }, v === null || v === undefined ? '—' : v)]));
}

function stat(label, value, id) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', id: id || null }, value));
}

function pager(route, page, pages, extra) {
  const q = (p) => `#/${route}?${new URLSearchParams({ ...(extra || {}), page: String(p) })}`;
  return h('nav', { class: 'pager' },
    page > 1 ? h('a', { href: q(page - 1), rel: 'prev' }, '← newer') : h('span', { class: 'muted' }, '← newer'),
    h('span', {}, `page ${num(page)} of ${num(Math.max(pages, 1))}`),
    page < pages ? h('a', { href: q(page + 1), rel: 'next' }, 'older →') : h('span', { class: 'muted' }, 'older →'));
}

// ---------------------------------------------------------------- errors

class PageError extends Error {
  constructor(title, detail) {
    super(title);
    this.detail = detail;
  }
}

const notFound = (what, detail) => new PageError(`${what} not found`, detail);
const malformed = (what, given, want) => new PageError(`Malformed ${what}`,
  `${JSON.stringify(String(given).slice(0, 200))} is not ${want}.`);

function explain(e) {
  if (e instanceof PageError) return [e.message, e.detail];
  if (e instanceof RpcError) {
    if (e.code === ERR_NOT_FOUND) return ['Not found', e.message];
    if (e.code === ERR_PARAMS) return ['The node refused the request', e.message];
    if (e.code === 0) return ['The node is unreachable', e.message];
    return [`The node answered an error (${e.code})`, e.message];
  }
  return ['The page failed', String(e && e.message ? e.message : e)];
}

function errorPage(e) {
  const [title, detail] = explain(e);
  return h('section', { class: 'error', 'data-error': 'true' },
    h('h1', {}, title), detail ? h('p', {}, detail) : null,
    h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
}

function pageNumber(query) {
  const raw = query.get('page');
  if (raw === null || raw === '') return 1;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) throw malformed('page number', raw, 'a whole number from 1');
  const p = Number(raw);
  if (p > PAGE_MAX) throw new PageError('Page out of range', `Page ${raw.slice(0, 40)} is past the end of every list.`);
  return p;
}

function pastTheEnd(page, pages, what) {
  if (page > Math.max(pages, 1)) {
    throw new PageError('Page out of range', `Page ${num(page)} is past the end: there ${pages === 1 ? 'is' : 'are'} ${num(pages)} page${pages === 1 ? '' : 's'} of ${what}.`);
  }
}

const isAddress = (s) => /^tb1[0-9a-z]{20,90}$/.test(s);

// ---------------------------------------------------------------- pages

async function overview() {
  const [info, head, fund, providers, net] = await batch([
    ['chain.info', []], ['chain.head', []], ['aicf.getBalance', []], ['aicf.listProviders', []], ['net.info', []]]);
  for (const a of [info, head, fund, providers]) if (a.error) throw new RpcError(a.error.code, a.error.message);
  const i = info.result;
  const tip = head.result.height;
  const recent = await batch(Array.from({ length: Math.min(10, tip + 1) }, (_, k) => ['chain.getBlock', [tip - k]]));
  const blocks = recent.filter((r) => r.result).map((r) => r.result);
  let rate = null;
  if (blocks.length >= 2) {
    const span = (blocks[0].timestamp_ms - blocks[blocks.length - 1].timestamp_ms) / 1000;
    const work = blocks.slice(0, -1).reduce((s, b) => s + Number(b.difficulty), 0);
    if (span > 0) rate = work / span;
  }
  const leases = providers.result.reduce((s, p) => s + Number(p.active_leases || 0), 0);
  const peers = net.result && net.result.enabled ? net.result.peers.length : null;
  const f = fund.result;
  return [
    h('h1', {}, 'Overview'),
    h('div', { class: 'stats' },
      stat('Height', num(tip), 'stat-height'),
      stat('Difficulty', num(head.result.difficulty), 'stat-difficulty'),
      stat('Hash rate', rate === null ? '—' : hashRate(rate), 'stat-hashrate'),
      stat('Mempool', i.mempool ? `${num(i.mempool.transactions)} txs · ${num(i.mempool.bytes)} B` : '—', 'stat-mempool'),
      stat('Fund', `${tokens(f.consumer)} C · ${tokens(f.industrial)} I`, 'stat-fund'),
      stat('Active leases', num(leases), 'stat-leases'),
      stat('Providers', num(providers.result.length)),
      stat('Peers', peers === null ? 'p2p off' : num(peers))),
    h('h2', {}, 'Latest blocks'),
    h('div', { id: 'latest-blocks' }, blocksTable(blocks)),
    facts([
      ['Chain id', num(i.chain_id)], ['Tip', full(i.tip)], ['Genesis', full(i.genesis)],
      ['Total work', i.total_work], ['Block time target', `${num(i.block_time_target_ms)} ms`],
      ['Epoch', `${num(i.market.epoch_blocks)} blocks`], ['Challenge window', `${num(i.market.challenge_window_blocks)} blocks`],
      ['Mining', i.mining ? 'yes' : 'no']]),
  ];
}

function blockRow(b) {
  return [blockLink(b.height), hexCell(b.id), when(b.timestamp_ms), num(b.txs ?? (b.transactions || []).length),
    num(b.difficulty), accountLink(b.beneficiary)];
}

function blocksTable(blocks) {
  return table(['Height', 'Id', 'Time', 'Txs', 'Difficulty', 'Miner'], blocks.map(blockRow), 'No blocks.');
}

async function blocks(query) {
  const page = pageNumber(query);
  const head = await rpc('chain.head');
  const pages = Math.ceil((head.height + 1) / PAGE);
  pastTheEnd(page, pages, 'blocks');
  const top = head.height - (page - 1) * PAGE;
  const n = Math.min(PAGE, top + 1);
  const got = await batch(Array.from({ length: n }, (_, k) => ['chain.getBlock', [top - k]]));
  return [h('h1', {}, 'Blocks'), blocksTable(got.filter((r) => r.result).map((r) => r.result)), pager('blocks', page, pages)];
}

function txSummary(t) {
  const extra = Object.entries(t).filter(([k]) => !['id', 'kind', 'from', 'nonce', 'fee', 'fee_selector', 'bytes'].includes(k));
  return extra.map(([k, v]) => {
    if (typeof v === 'string' && isAddress(v)) return [k, accountLink(v)];
    if (typeof v === 'object' && v !== null) return [k, h('code', { class: 'full' }, JSON.stringify(v))];
    return [k, typeof v === 'string' && v.length > 20 ? full(v) : String(v)];
  });
}

async function block([ref]) {
  let param;
  if (/^[0-9]{1,19}$/.test(ref)) param = Number(ref);
  else if (HEX64.test(ref)) param = ref;
  else throw malformed('block reference', ref, 'a height or a 64-digit hex block id');
  if (typeof param === 'number' && !Number.isSafeInteger(param)) throw notFound('Block', `There is no block at height ${ref}.`);
  let b;
  try {
    b = await rpc('chain.getBlock', [param]);
  } catch (e) {
    if (e instanceof RpcError && (e.code === ERR_NOT_FOUND || e.code === ERR_PARAMS)) {
      throw notFound('Block', typeof param === 'number' ? `There is no block at height ${ref} on this chain.` : `No block has id ${ref}.`);
    }
    throw e;
  }
  const txs = b.transactions || [];
  return [
    h('h1', {}, `Block #${num(b.height)}`),
    h('nav', { class: 'pager' },
      b.height > 0 ? link(`block/${b.height - 1}`, '← parent') : h('span', { class: 'muted' }, 'genesis'),
      link(`block/${b.height + 1}`, 'child →')),
    facts([['Id', full(b.id)], ['Height', num(b.height)], ['Parent', b.height > 0 ? blockLink(b.parent) : full(b.parent)],
      ['Time', when(b.timestamp_ms)], ['Difficulty', num(b.difficulty)], ['Nonce', num(b.nonce)],
      ['Miner', accountLink(b.beneficiary)],
      ['Coinbase', `${tokens(b.coinbase_consumer)} C · ${tokens(b.coinbase_industrial)} I`],
      ['Tx root', full(b.tx_root)], ['State root', full(b.state_root)], ['Receipts root', full(b.receipts_root)]]),
    h('h2', {}, `Transactions (${num(txs.length)})`),
    table(['Id', 'Kind', 'From', 'Nonce', 'Fee', 'Bytes'],
      txs.map((t) => [txLink(t.id), t.kind, accountLink(t.from), num(t.nonce), tokens(t.fee), num(t.bytes)]), 'No transactions.'),
  ];
}

async function tx([id]) {
  if (!HEX64.test(id)) throw malformed('transaction id', id, 'a 64-digit lowercase hex id');
  let t;
  try {
    t = await rpc('chain.getTx', [id]);
  } catch (e) {
    if (e instanceof RpcError && e.code === ERR_NOT_FOUND) throw notFound('Transaction', `No transaction with id ${id} is included or pending.`);
    throw e;
  }
  const x = t.tx;
  return [
    h('h1', {}, `Transaction ${short(x.id)}`),
    facts([['Id', full(x.id)], ['Status', h('span', { class: `badge ${t.status}` }, t.status)],
      t.status === 'included' ? ['Block', blockLink(t.height)] : null,
      t.status === 'included' ? ['Index', num(t.index)] : null,
      ['Kind', x.kind], ['From', accountLink(x.from)], ['Nonce', num(x.nonce)],
      ['Fee', tokens(x.fee)], ['Fee selector', String(x.fee_selector)], ['Bytes', num(x.bytes)],
      t.task_id ? ['Job', jobLink(t.task_id)] : null, ...txSummary(x)]),
  ];
}

async function account([raw]) {
  const who = decodeURIComponent(raw || '');
  if (!(isAddress(who) || /^@?[A-Za-z0-9_.-]{1,64}$/.test(who))) {
    throw malformed('account', who, 'a tb1… address or an @handle');
  }
  let a;
  try {
    a = await rpc('balance', [who]);
  } catch (e) {
    if (e instanceof RpcError && e.code === ERR_PARAMS) throw notFound('Account', `${who} is neither a valid address nor a registered handle.`);
    throw e;
  }
  return [
    h('h1', {}, a.handle ? `${a.handle}` : 'Account'),
    facts([['Address', full(a.address)], ['Handle', a.handle || '—'],
      ['Consumer tokens', tokens(a.consumer)], ['Industrial tokens', tokens(a.industrial)],
      ['Nonce', num(a.nonce)], ['Next nonce', num(a.next_nonce)],
      ['Provider stake', a.stake === null || a.stake === undefined ? 'not a provider' : h('span', {}, tokens(a.stake), ' · ', providerLink(a.address))],
      ['Read at height', num(a.height)]]),
  ];
}

const JOB_STATES = ['Queued', 'Leased', 'Proven', 'Disputed', 'Verified', 'Settled', 'Failed'];

async function jobs(query) {
  const page = pageNumber(query);
  const state = query.get('state') || '';
  if (state && !JOB_STATES.some((s) => s.toLowerCase() === state.toLowerCase())) {
    throw malformed('job state', state, `one of ${JOB_STATES.join(', ')}`);
  }
  const args = [state || null, PAGE, (page - 1) * PAGE];
  const r = await rpc('compute.listJobs', args);
  const pages = Math.ceil(r.total / PAGE);
  pastTheEnd(page, pages, state ? `${state} jobs` : 'jobs');
  return [
    h('h1', {}, 'Jobs'),
    h('nav', { class: 'filters' }, link('jobs', 'all'), JOB_STATES.map((s) => link(`jobs?state=${s}`, s))),
    h('p', { class: 'muted' }, `${num(r.total)} ${state || ''} job${r.total === 1 ? '' : 's'}, newest first.`),
    table(['Job', 'State', 'Requester', 'Submitted', 'Receipts'],
      r.jobs.map((j) => [jobLink(j.task_id), h('span', { class: `badge ${j.state}` }, j.state), accountLink(j.requester),
        blockLink(j.submitted), num(j.receipts)]), 'No jobs.'),
    pager('jobs', page, pages, state ? { state } : null),
  ];
}

function timeline(j, receipts) {
  const ev = [[j.submitted, 'submitted', 'The SubmitJob transaction was included.']];
  for (const l of j.leases) ev.push([l.start, 'leased', h('span', {}, 'Leased to ', providerLink(l.provider), ` until #${num(l.expiry)}`)]);
  for (const s of j.seals) ev.push([s.height, 'sealed', h('span', {}, 'Sealed answer from ', providerLink(s.provider))]);
  for (const r of receipts) {
    // A lease ends with its receipt; the chain's latency (lease to delivery, in
    // blocks) gives where it began.
    if (!j.leases.some((l) => l.provider === r.provider) && r.latency_blocks !== undefined) {
      ev.push([r.height - r.latency_blocks, 'leased', h('span', {}, 'Leased to ', providerLink(r.provider))]);
    }
    ev.push([r.height, 'receipt', h('span', {}, 'Receipt from ', providerLink(r.provider), r.refuted ? ' (refuted)' : '')]);
  }
  for (const d of j.disputes_detail || []) {
    ev.push([d.opened, 'challenged', h('span', {}, `${d.kind === 'challenge' ? 'Challenged' : 'Replica dispute'} at op ${d.op}`,
      d.challenger ? [' by ', accountLink(d.challenger)] : '')]);
    if (d.ruled_at !== null && d.ruled_at !== undefined) ev.push([d.ruled_at, 'ruled', `Ruled: ${d.ruling}`]);
  }
  if (j.window_end && j.receipts.length) ev.push([j.window_end, 'window', 'Challenge window ends']);
  if (j.failure) ev.push([j.failure.height, 'failed', `${j.failure.reason}: ${j.failure.description}`]);
  ev.sort((a, b) => a[0] - b[0]);
  return h('ol', { class: 'timeline', id: 'timeline' }, ev.map(([height, kind, what]) =>
    h('li', { 'data-kind': kind }, h('span', { class: 'when' }, blockLink(height)), h('span', { class: `badge ${kind}` }, kind), ' ', what)));
}

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function resultSection(task, res) {
  if (!res) return h('p', { class: 'muted' }, 'No result yet.');
  const rows = (res.outputs || []).map((o) => [o.name, o.dtype, `[${o.shape.join(', ')}]`, hexCell(o.digest),
    h('code', { class: 'preview' }, (o.preview || []).map((v) => (v === null ? 'NaN' : String(v))).join(', ') + (o.preview && o.preview.length < o.elements ? ', …' : ''))]);
  let download = null;
  if (res.hex) {
    const url = URL.createObjectURL(new Blob([hexToBytes(res.hex)], { type: 'application/octet-stream' }));
    download = h('a', { href: url, download: `result-${task}.tbr`, id: 'result-download' }, `Download the result object (${num(res.result_bytes)} bytes)`);
  } else if (res.result_sha256) {
    download = h('p', { class: 'muted' }, `The result object is ${num(res.result_bytes)} bytes: read it with compute.getBlob ranges or tb-cli compute result.`);
  }
  return [
    facts([['Status', h('span', { class: `badge ${res.status}` }, res.status)], ['Final', res.final ? 'yes' : 'no'],
      ['Provider', res.provider ? providerLink(res.provider) : '—'], ['Output digest', full(res.output_digest)],
      ['Result object', full(res.result_sha256)], res.refuted && res.refuted.length ? ['Refuted', res.refuted.map(providerLink)] : null]),
    rows.length ? table(['Output', 'Dtype', 'Shape', 'Digest', 'Preview'], rows) : null,
    download,
  ];
}

async function job([id]) {
  if (!HEX64.test(id)) throw malformed('job id', id, 'a 64-digit lowercase hex task id (or its SubmitJob transaction id)');
  let got;
  try {
    got = await rpc('compute.getJob', [id]);
  } catch (e) {
    if (e instanceof RpcError && e.code === ERR_NOT_FOUND) throw notFound('Job', `No job has task id ${id}, and no SubmitJob transaction has that id.`);
    throw e;
  }
  const j = got;
  const [rc, res] = await batch([['compute.getReceipt', [j.task_id]], ['compute.getResult', [j.task_id]]]);
  const receipts = rc.result ? rc.result.receipts : [];
  const disputes = j.disputes_detail || [];
  return [
    h('h1', {}, `Job ${short(j.task_id)}`),
    facts([['Task id', full(j.task_id)], ['State', h('span', { class: `badge ${j.state}`, id: 'job-state' }, j.state)],
      ['Requester', accountLink(j.requester)], ['Submitted', blockLink(j.submitted)],
      ['Program blob', h('span', {}, full(j.blob_sha256), ` (${num(j.blob_bytes)} bytes)`)],
      j.model_sha256 ? ['Model', h('span', {}, full(j.model_sha256), ` (${num(j.model_bytes)} bytes)`)] : null,
      ['FLOPs', num(j.flops)], ['Ops', num(j.n_ops)], ['Outputs', num(j.outputs)], ['Lane', num(j.lane)],
      ['Max price', tokens(j.max_price)], ['Escrow', tokens(j.escrow)], ['Redundancy', num(j.redundancy)],
      ['Deadline', blockLink(j.deadline)], ['Retries', num(j.retries)],
      j.failure ? ['Failure', `${j.failure.reason} at #${j.failure.height}: ${j.failure.description}`] : null]),
    h('h2', {}, 'Timeline'),
    timeline(j, receipts),
    h('h2', {}, `Receipts (${receipts.length})`),
    receipts.length === 0 ? h('p', { class: 'muted' }, 'No receipt yet.') : receipts.map((r) => h('section', { class: 'receipt' },
      facts([['Provider', providerLink(r.provider)], ['Accepted at', blockLink(r.height)],
        ['Fabric', r.fabric ?? '—'], ['Device', r.device ?? '—'],
        ['kernel_variant_digest', full(r.kernel_variant_digest)], ['benchmark_commit', full(r.benchmark_commit)],
        ['Latency', `${num(r.latency_blocks)} blocks · ${num(r.latency_ms)} ms`],
        ['Proof latency', r.proof_latency_ms === undefined || r.proof_latency_ms === null ? '—' : `${num(r.proof_latency_ms)} ms`],
        ['trace_root', full(r.trace_root)], ['Output digest', full(r.output_digest)], ['Receipt hash', full(r.receipt_hash)],
        ['Payable', r.payable ? 'yes' : 'no (SLA missed)'], ['Refuted', r.refuted ? 'yes' : 'no']]))),
    h('h2', {}, `Challenges and rulings (${disputes.length})`),
    table(['Kind', 'Op', 'Accused', 'Challenger', 'Opened', 'Deadline', 'Ruled', 'Ruling'],
      disputes.map((d) => [d.kind, h('span', { 'data-field': 'losing-op' }, String(d.op)), d.accused.map(providerLink), d.challenger ? accountLink(d.challenger) : '—',
        blockLink(d.opened), blockLink(d.deadline), d.ruled_at === null ? 'open' : blockLink(d.ruled_at), d.ruling ?? '—']),
      'Never challenged.'),
    h('h2', {}, 'Result'),
    res.error ? h('p', { class: 'muted' }, `The result is not available here: ${res.error.message}`) : resultSection(j.task_id, res.result),
  ];
}

function providerRows(list) {
  return list.map((p) => {
    const tries = Number(p.receipts) + Number(p.missed_leases);
    return [providerLink(p.address), tokens(p.stake), num(p.active_leases), num(p.receipts),
      tries ? pct(Number(p.receipts) / tries) : '—', num(p.slashed), p.fabrics.join(', '), p.region || '—'];
  });
}

async function providers() {
  const list = await rpc('aicf.listProviders');
  return [h('h1', {}, 'Providers'),
    table(['Provider', 'Stake', 'Leases', 'Receipts', 'Success', 'Slashed', 'Fabrics', 'Region'], providerRows(list), 'No provider has registered.')];
}

async function provider([raw]) {
  const addr = decodeURIComponent(raw || '');
  if (!isAddress(addr)) throw malformed('provider address', addr, 'a tb1… address');
  let p;
  try {
    p = await rpc('aicf.getProvider', [addr]);
  } catch (e) {
    if (e instanceof RpcError && (e.code === ERR_NOT_FOUND || e.code === ERR_PARAMS)) throw notFound('Provider', `${addr} is not a registered provider.`);
    throw e;
  }
  const tries = Number(p.receipts) + Number(p.missed_leases);
  const slashes = p.slashes || [];
  return [
    h('h1', {}, 'Provider'),
    facts([['Address', full(p.address)], ['Account', accountLink(p.address)], ['Stake', tokens(p.stake)],
      ['Unbonding', tokens(p.unbonding)], ['Fabrics', p.fabrics.join(', ')], ['Models', (p.models || []).join(', ') || '—'],
      ['Region', p.region || '—'], ['Max leases', num(p.max_leases)], ['Active leases', num(p.active_leases)],
      ['Availability', p.availability === undefined ? '—' : pct(p.availability)],
      ['Success rate', tries ? `${pct(Number(p.receipts) / tries)} (${num(p.receipts)} receipts, ${num(p.missed_leases)} missed leases)` : 'no lease yet'],
      ['Earnings', p.earned_micro === undefined ? '—' : tokens(p.earned_micro)],
      ['Jailed until', p.jailed_until ? blockLink(p.jailed_until) : 'not jailed'],
      ['Last heartbeat', p.last_heartbeat ? blockLink(p.last_heartbeat) : '—'],
      ['Registered', blockLink(p.registered_at)], ['Slashed', num(p.slashed)],
      ['Balance', `${tokens(p.balance.consumer)} C · ${tokens(p.balance.industrial)} I`]]),
    h('h2', {}, `SLA history: slashes (${slashes.length})`),
    h('div', { id: 'slashes' }, table(['Height', 'Reason', 'Job', 'Amount', 'Output digest'],
      slashes.map((s) => [blockLink(s.height), h('span', { class: 'badge slash' }, s.reason), s.task_id ? jobLink(s.task_id) : '—',
        tokens(s.amount), hexCell(s.output_digest)]), 'Never slashed.')),
  ];
}

async function epochs(query) {
  const page = pageNumber(query);
  const info = await rpc('chain.info');
  const per = Number(info.market.epoch_blocks);
  const current = Math.floor(info.height / per);
  // Settled epochs: every one before the current.
  const pages = Math.ceil(current / PAGE);
  pastTheEnd(page, pages, 'settled epochs');
  const top = current - 1 - (page - 1) * PAGE;
  const want = Array.from({ length: Math.max(0, Math.min(PAGE, top + 1)) }, (_, k) => top - k);
  const got = await batch(want.map((e) => ['aicf.payouts', [e]]));
  const rows = got.map((g, k) => {
    const e = want[k];
    const r = g.result || { payouts: [], summary: null };
    const sum = (f) => r.payouts.reduce((s, p) => s + Number(p[f]), 0);
    return [link(`epoch/${e}`, `#${e}`), blockLink((e + 1) * per - 1), num(r.payouts.length),
      tokens(sum('provider_micro')), tokens(sum('miner_micro')), tokens(sum('fund_micro')), num(r.summary ? r.summary.slashes : 0)];
  });
  return [h('h1', {}, 'Epochs'),
    h('p', { class: 'muted' }, `An epoch is ${num(per)} blocks; epoch ${num(current)} is under way. Verified work is paid at each epoch's end: 80 % to the provider, 15 % to the miner, 5 % to the fund.`),
    table(['Epoch', 'Settled at', 'Payouts', 'Providers', 'Miners', 'Fund', 'Slashes'], rows, 'No epoch has ended yet.'),
    pager('epochs', page, pages)];
}

async function epoch([raw]) {
  if (!/^[0-9]{1,12}$/.test(raw)) throw malformed('epoch', raw, 'a whole number');
  const r = await rpc('aicf.payouts', [Number(raw)]);
  const total = r.payouts.reduce((s, p) => s + Number(p.provider_micro) + Number(p.miner_micro) + Number(p.fund_micro), 0);
  const share = (f) => (total ? pct(r.payouts.reduce((s, p) => s + Number(p[f]), 0) / total) : '—');
  return [h('h1', {}, `Epoch ${num(r.epoch)}`),
    facts([['Payouts', num(r.payouts.length)], ['Paid in all', tokens(total)],
      ['Split provider / miner / fund', `${share('provider_micro')} / ${share('miner_micro')} / ${share('fund_micro')}`],
      r.summary ? ['Units (milli)', num(r.summary.units_milli)] : null,
      r.summary ? ['Price per unit', tokens(r.summary.price_micro)] : null,
      r.summary ? ['Slashes', num(r.summary.slashes)] : null]),
    table(['Job', 'Provider', 'Units (milli)', 'Price', 'Provider', 'Miner', 'Fund'],
      r.payouts.map((p) => [jobLink(p.task_id), providerLink(p.provider), num(p.units_milli), tokens(p.price_micro),
        tokens(p.provider_micro), tokens(p.miner_micro), tokens(p.fund_micro)]), 'Nothing was paid in this epoch.')];
}

function proposals(list, extra) {
  return table(['Id', 'Status', 'Proposer', 'Change', 'Created', 'Voting ends', 'Votes (yes / no of total)', ...(extra ? [extra[0]] : [])],
    list.map((p) => {
      const t = p.current_tally || p.tally;
      return [num(p.id), p.status, accountLink(p.proposer), h('code', { class: 'full' }, p.body), blockLink(p.created), blockLink(p.voting_end),
        t ? `${num(t.yes)} / ${num(t.no)} of ${num(t.total)} (${num(t.voters)} voters)` : '—', ...(extra ? [extra[1](p)] : [])];
    }), 'None.');
}

async function governance() {
  const s = await rpc('governor.status');
  const report = (p) => (p.report ? `${num(p.report.receipts_seen)} receipts seen · ${num(p.report.would_pass)} would pass · ${num(p.report.would_violate)} would violate` : '—');
  return [h('h1', {}, 'Governance'),
    h('p', {}, s.differs_from_genesis ? 'Parameters differ from genesis:' : 'Every parameter is as at genesis.'),
    s.changed.length ? table(['Parameter', 'Genesis', 'Active'], s.changed.map((c) => [c.name, String(c.genesis), String(c.active)])) : null,
    h('h2', {}, 'Voting'), proposals(s.voting),
    h('h2', {}, 'Shadowing (shadow reports)'), proposals(s.shadowing, ['Shadow report', report]),
    h('h2', {}, 'Scheduled'), proposals(s.scheduled),
    h('h2', {}, 'Active'), proposals(s.active),
    h('h2', {}, 'History'), proposals(s.history)];
}

// Where a search box entry leads.
async function search(query) {
  const q = (query.get('q') || '').trim();
  if (!q) throw new PageError('Nothing to search', 'Enter a height, an id, an address or an @handle.');
  if (/^[0-9]{1,19}$/.test(q)) return go(`block/${q}`);
  if (isAddress(q) || q.startsWith('@')) return go(`account/${encodeURIComponent(q)}`);
  const hex = q.toLowerCase();
  if (HEX64.test(hex)) {
    const [j, t, b] = await batch([['compute.getJob', [hex]], ['chain.getTx', [hex]], ['chain.getBlock', [hex]]]);
    if (j.result) return go(`job/${j.result.task_id}`);
    if (t.result) return go(`tx/${hex}`);
    if (b.result) return go(`block/${hex}`);
    throw notFound('Id', `No job, transaction or block has id ${hex}.`);
  }
  throw malformed('search', q, 'a height, a 64-digit hex id, a tb1… address or an @handle');
}

function go(route) {
  location.hash = `#/${route}`;
  return null;
}

const ROUTES = { '': overview, blocks, block, tx, account, jobs, job, providers, provider, epochs, epoch, governance, search };
const LIST_ROUTES = new Set(['', 'blocks', 'jobs', 'providers', 'epochs', 'governance', 'search']);

let current = '';
let renderSeq = 0;

async function render() {
  const seq = ++renderSeq;
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?', 2);
  const parts = path.split('/').filter((p) => p !== '');
  const name = parts[0] || '';
  const query = new URLSearchParams(qs || '');
  const app = document.getElementById('app');
  const page = ROUTES[name];
  current = name;
  app.setAttribute('data-page', name || 'overview');
  app.setAttribute('aria-busy', 'true');
  let content;
  try {
    if (!page || (LIST_ROUTES.has(name) && parts.length > 1) || (!LIST_ROUTES.has(name) && parts.length !== 2)) {
      throw new PageError('No such page', `There is no explorer page at #/${raw.slice(0, 200)}.`);
    }
    content = await page(LIST_ROUTES.has(name) ? query : parts.slice(1), query);
  } catch (e) {
    content = errorPage(e);
  }
  if (seq !== renderSeq || content === null) return; // a newer navigation won
  app.replaceChildren(...[content].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false));
  app.setAttribute('aria-busy', 'false');
  document.title = `${(app.querySelector('h1') || { textContent: 'Explorer' }).textContent} · The Block`;
}

// ---------------------------------------------------------------- live heads

let liveHeight = null;

function setLive(ok, text) {
  document.getElementById('live-dot').className = ok ? 'dot on' : 'dot';
  document.getElementById('live-text').textContent = text;
}

function onHead(head) {
  liveHeight = head.height;
  setLive(true, `live · head #${head.height.toLocaleString('en-US')} · ${when(head.timestamp_ms)}`);
  document.getElementById('live').setAttribute('data-height', String(head.height));
  if (current !== '') return;
  const cell = document.getElementById('stat-height');
  if (cell) cell.textContent = num(head.height);
  const tbody = document.querySelector('#latest-blocks tbody');
  if (tbody) {
    tbody.prepend(h('tr', { class: 'fresh' }, blockRow(head).map((c) => h('td', {}, c))));
    while (tbody.children.length > 10) tbody.lastElementChild.remove();
  }
}

function connect(delay) {
  let ws;
  try {
    ws = new WebSocket(WS_URL);
  } catch (e) {
    setLive(false, `no live updates (${e.message})`);
    return;
  }
  ws.onopen = () => {
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscribe_newHeads', params: [] }));
    setLive(true, liveHeight === null ? 'live · waiting for the next block' : `live · head #${liveHeight}`);
    delay = 1000;
  };
  ws.onmessage = (m) => {
    let j;
    try { j = JSON.parse(m.data); } catch (e) { return; }
    if (j.method === 'newHeads' && j.params && j.params.result) onHead(j.params.result);
  };
  ws.onclose = () => {
    setLive(false, `disconnected; retrying in ${Math.round(delay / 1000)} s`);
    setTimeout(() => connect(Math.min(delay * 2, 30000)), delay);
  };
}

// ---------------------------------------------------------------- start

document.getElementById('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = document.getElementById('q').value.trim();
  location.hash = `#/search?${new URLSearchParams({ q })}`;
});
window.addEventListener('hashchange', render);
render();
connect(1000);
