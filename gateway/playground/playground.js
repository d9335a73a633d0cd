/* Vitrine playground: plain script (defer), no framework, no build step.
 * Talks to the gateway's HTTP API of the same origin: /v1/search, /v1/facets, /v1/describe. */
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'vitrine.apiKey';
  const MAX_VALUES = 12; // facet values shown before "Show all"
  const CHIP_ORDER = ['gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour',
    'brand', 'category', 'color', 'colour', 'season', 'usage'];
  const RERANK = { on: 'RERANK_MODE_ON', off: 'RERANK_MODE_OFF' };
  const RETRIEVAL = { vector: 'RETRIEVAL_MODE_VECTOR', lexical: 'RETRIEVAL_MODE_LEXICAL', hybrid: 'RETRIEVAL_MODE_HYBRID' };
  const COMPOSE = { weighted: 'COMPOSE_MODE_WEIGHTED', model: 'COMPOSE_MODE_MODEL' };

  const cfg = { image_url_attribute: 'image_url', auth_required: false, default_k: 10, max_k: 1000, collection: '' };
  const state = {
    photo: null, photoUrl: null, describePhoto: null, describeUrl: null,
    searchCtl: null, describeCtl: null, searched: false, weightTouched: false,
    groups: [], facetsFailed: false, lastSearchError: null,
  };
  const el = {};
  for (const id of ['collection', 'auth-form', 'api-key', 'filters-box', 'filter-count', 'filters', 'facets-msg',
    'facets', 'clear-filters', 'search-form', 'q', 'search-btn', 'drop', 'photo', 'photo-preview', 'photo-thumb',
    'photo-name', 'photo-clear', 'k', 'rerank', 'retrieval', 'compose', 'text-weight', 'text-weight-out',
    'describe-query', 'status', 'summary', 'query-desc', 'results', 'timings', 'describe', 'describe-form',
    'describe-drop', 'describe-photo', 'describe-preview', 'describe-thumb', 'describe-name', 'describe-btn',
    'describe-use', 'describe-out', 'describe-msg', 'describe-title', 'describe-attrs', 'describe-model']) {
    el[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = $(id);
  }

  /* ---- small helpers ------------------------------------------------------------------------ */

  // h('div', {class: 'x', text: 'y', onclick: fn, 'aria-label': 'z'}, ...children)
  function h(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'style') node.style.cssText = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) if (kid != null && kid !== false) node.append(kid);
    return node;
  }

  function fmtNum(x) {
    const n = Number(x);
    if (!Number.isFinite(n)) return String(x);
    return Number.isInteger(n) ? String(n) : String(+n.toFixed(4));
  }

  function fmtMs(seconds) {
    const ms = Number(seconds) * 1000;
    return `${ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  }

  // The display text of an AttributeValue ({string_value} | {double_value} | {bool_value} | {list_value}).
  function avText(v) {
    if (v == null) return '';
    if (typeof v !== 'object') return String(v);
    if ('string_value' in v) return v.string_value;
    if ('double_value' in v) return fmtNum(v.double_value);
    if ('bool_value' in v) return v.bool_value ? 'yes' : 'no';
    if ('list_value' in v) return ((v.list_value && v.list_value.values) || []).map(avText).join(', ');
    return '';
  }

  const enumName = (v, prefix) => (typeof v === 'string' && v && !v.endsWith('UNSPECIFIED') ? v.replace(prefix, '').toLowerCase() : '');

  function isImage(file) {
    if (!file) return false;
    if (file.type) return file.type.startsWith('image/');
    return /\.(jpe?g|png|webp|gif|avif|bmp)$/i.test(file.name || '');
  }

  const getKey = () => { try { return sessionStorage.getItem(KEY_STORE) || ''; } catch { return ''; } };
  const setKey = (v) => { try { if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE); } catch { /* off */ } };
  const showAuth = () => { el.authForm.hidden = false; };

  /* ---- API ---------------------------------------------------------------------------------- */

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status; this.code = code; this.retryAfter = retryAfter;
    }
  }

  function errorText(e) {
    if (!(e instanceof ApiError)) return `Error: ${e && e.message ? e.message : e}`;
    let s = `${e.code}: ${e.message}`.replace(/([^.!?])$/, '$1.');
    if (e.status === 429) s += e.retryAfter ? ` Retry after ${e.retryAfter} s.` : ' Try again shortly.';
    if (e.status === 401) s += ' Enter an API key in the top bar.';
    return s;
  }

  // POST JSON (or a FormData) to the API; resolves to the parsed JSON, rejects with ApiError.
  async function api(path, body, signal) {
    const headers = { Accept: 'application/json' };
    const key = getKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let payload = body;
    if (!(body instanceof FormData)) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(path, { method: 'POST', headers, body: payload, signal });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'UNAVAILABLE', 'the gateway could not be reached');
    }
    let data = null;
    try { data = await res.json(); } catch (e) { if (e.name === 'AbortError') throw e; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401) showAuth();
      throw new ApiError(res.status, err.code || `HTTP ${res.status}`, err.message || res.statusText || 'request failed',
        res.headers.get('Retry-After'));
    }
    return data || {};
  }

  /* ---- status region ------------------------------------------------------------------------ */

  // kind: 'error' (role=alert), 'quiet' (announced, visually hidden) or undefined.
  function setStatus(msg, kind) {
    const p = h('p', { text: msg });
    if (kind === 'error') { p.className = 'error'; p.setAttribute('role', 'alert'); }
    if (kind === 'quiet') p.className = 'vh';
    el.status.replaceChildren(p);
  }

  /* ---- facets / filters --------------------------------------------------------------------- */

  async function loadFacets() {
    el.facetsMsg.hidden = false;
    if (cfg.auth_required && !getKey()) {
      state.facetsFailed = true;
      el.facetsMsg.textContent = 'Enter an API key (top bar) to load the filters.';
      return;
    }
    el.facetsMsg.textContent = 'Loading filters…';
    try {
      const data = await api('/v1/facets', { limit: 30 });
      state.facetsFailed = false;
      renderFacets(data.facets || []);
    } catch (e) {
      state.facetsFailed = true;
      state.groups = [];
      el.facets.replaceChildren();
      el.facetsMsg.textContent = `Filters are unavailable (${errorText(e)}). Search still works.`;
    }
    updateFilterCount();
  }

  function renderFacets(facets) {
    state.groups = [];
    const frag = document.createDocumentFragment();
    facets.forEach((f, i) => {
      const field = f && f.field;
      if (!field || field === 'title' || field === cfg.image_url_attribute) return;
      const values = (f.values || []).filter((v) => v && v.value);
      const nums = f.numbers && Number(f.numbers.count) > 0 ? f.numbers : null;
      const showValues = values.length > 0 && Number(values[0].count) > 1; // else identifier-like
      if (!showValues && !nums) return;
      const group = { field, values, boxes: [], min: null, max: null };
      const fs = h('fieldset', null, h('legend', { text: field }));
      if (showValues) {
        const more = h('div', { id: `fv-${i}-more`, hidden: true });
        values.forEach((v, j) => {
          const id = `fv-${i}-${j}`;
          const box = h('input', { type: 'checkbox', id, 'data-j': j });
          group.boxes.push(box);
          const row = h('div', { class: 'val' }, box, h('label', { for: id, text: `${avText(v.value)} (${v.count})` }));
          (j < MAX_VALUES ? fs : more).append(row);
        });
        if (values.length > MAX_VALUES) {
          const toggle = h('button', {
            type: 'button', class: 'btn-secondary more-btn', 'aria-expanded': 'false', 'aria-controls': more.id,
            text: `Show all ${values.length}`,
          });
          toggle.addEventListener('click', () => {
            const open = more.hidden;
            more.hidden = !open;
            toggle.setAttribute('aria-expanded', String(open));
            toggle.textContent = open ? 'Show fewer' : `Show all ${values.length}`;
          });
          fs.append(more, toggle);
        }
        if (f.truncated) fs.append(h('p', { class: 'muted small', text: 'Only the most frequent values are listed.' }));
      }
      if (nums) {
        const num = (which, ph) => h('input', { type: 'number', step: 'any', inputmode: 'decimal', id: `fn-${i}-${which}`, placeholder: fmtNum(ph) });
        group.min = num('min', nums.min);
        group.max = num('max', nums.max);
        fs.append(h('div', { class: 'range' },
          h('label', null, 'Min', h('span', { class: 'vh', text: ` ${field}` }), group.min),
          h('label', null, 'Max', h('span', { class: 'vh', text: ` ${field}` }), group.max)));
      }
      state.groups.push(group);
      frag.append(fs);
    });
    el.facets.replaceChildren(frag);
    el.facetsMsg.hidden = state.groups.length > 0;
    el.facetsMsg.textContent = state.groups.length ? '' : 'No attributes to filter on.';
  }

  function rangeOf(g) {
    const lo = g.min && g.min.value !== '' ? Number(g.min.value) : NaN;
    const hi = g.max && g.max.value !== '' ? Number(g.max.value) : NaN;
    if (!Number.isFinite(lo) && !Number.isFinite(hi)) return null;
    const r = { field: g.field };
    if (Number.isFinite(lo)) r.gte = lo;
    if (Number.isFinite(hi)) r.lte = hi;
    return r;
  }

  // The vitrine.v1.Filter of the sidebar, or null when nothing is selected.
  function buildFilter() {
    const parts = [];
    for (const g of state.groups) {
      const vals = g.boxes.filter((b) => b.checked).map((b) => g.values[Number(b.dataset.j)].value);
      if (vals.length) parts.push({ is_in: { field: g.field, values: vals } });
      const range = rangeOf(g);
      if (range) parts.push({ range });
    }
    return parts.length ? { all_of: { filters: parts } } : null;
  }

  function updateFilterCount() {
    const n = state.groups.filter((g) => g.boxes.some((b) => b.checked) || rangeOf(g)).length;
    el.filterCount.textContent = n ? `(${n} active)` : '';
  }

  function filtersChanged() {
    updateFilterCount();
    if (state.searched) runSearch();
  }

  function clearFilters() {
    for (const g of state.groups) {
      g.boxes.forEach((b) => { b.checked = false; });
      if (g.min) g.min.value = '';
      if (g.max) g.max.value = '';
    }
    filtersChanged();
  }

  /* ---- photos ------------------------------------------------------------------------------- */

  function setPhoto(file, fromInput) {
    if (file && !isImage(file)) {
      setStatus(`“${file.name || 'That file'}” is not an image.`, 'error');
      el.photo.value = '';
      return false;
    }
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photo = file || null;
    state.photoUrl = file ? URL.createObjectURL(file) : null;
    if (!fromInput) el.photo.value = '';
    el.photoPreview.hidden = !file;
    if (file) {
      el.photoThumb.src = state.photoUrl;
      el.photoName.textContent = file.name || 'pasted image';
    } else {
      el.photoThumb.removeAttribute('src');
      el.photoName.textContent = '';
    }
    el.describeUse.disabled = !file;
    return true;
  }

  function setDescribePhoto(file, fromInput) {
    if (file && !isImage(file)) {
      showDescribeMsg(`“${file.name || 'That file'}” is not an image.`, true);
      el.describePhoto.value = '';
      return false;
    }
    if (state.describeUrl) URL.revokeObjectURL(state.describeUrl);
    state.describePhoto = file || null;
    state.describeUrl = file ? URL.createObjectURL(file) : null;
    if (!fromInput) el.describePhoto.value = '';
    el.describePreview.hidden = !file;
    if (file) {
      el.describeThumb.src = state.describeUrl;
      el.describeName.textContent = file.name || 'pasted image';
    }
    return true;
  }

  const dragKinds = (e) => Array.from((e.dataTransfer && e.dataTransfer.types) || []);
  const isFileDrag = (e) => dragKinds(e).some((t) => t === 'Files' || t === 'text/uri-list');

  async function fetchImage(url, name) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    return new File([blob], name, { type: blob.type || 'image/jpeg' });
  }

  // Dropping a file (or an image dragged from the results) on `target` calls onFile(file).
  function wireDrop(zone, target, onFile) {
    let depth = 0;
    const off = () => { depth = 0; zone.classList.remove('dragging'); };
    target.addEventListener('dragenter', (e) => { if (isFileDrag(e)) { depth += 1; zone.classList.add('dragging'); } });
    target.addEventListener('dragleave', (e) => { if (isFileDrag(e) && --depth <= 0) off(); });
    target.addEventListener('dragover', (e) => {
      if (!isFileDrag(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    target.addEventListener('drop', async (e) => {
      if (!isFileDrag(e)) return;
      e.preventDefault();
      off();
      const file = e.dataTransfer.files && e.dataTransfer.files[0];
      if (file) { onFile(file); return; }
      const url = (e.dataTransfer.getData('text/uri-list') || '').split(/\r?\n/).find((l) => l && !l.startsWith('#'));
      if (!url) return;
      try {
        onFile(await fetchImage(url, url.split('/').pop().split('?')[0] || 'dropped-image'));
      } catch (err) {
        setStatus(`Could not use the dropped image: ${err.message}`, 'error');
      }
    });
  }

  /* ---- search ------------------------------------------------------------------------------- */

  function buildRequest(text) {
    const req = { k: Number(el.k.value), include_attributes: true };
    if (text) req.text = text;
    if (RERANK[el.rerank.value]) req.rerank = RERANK[el.rerank.value];
    if (RETRIEVAL[el.retrieval.value]) req.retrieval_mode = RETRIEVAL[el.retrieval.value];
    if (COMPOSE[el.compose.value]) req.compose_mode = COMPOSE[el.compose.value];
    if (el.compose.value === 'weighted' && state.weightTouched) {
      const t = Number(el.textWeight.value);
      req.weights = { text_weight: t, image_weight: +(1 - t).toFixed(2) };
    }
    if (state.photo && el.describeQuery.checked) req.describe_query = true;
    const filter = buildFilter();
    if (filter) req.filter = filter;
    return req;
  }

  function saveUrl(text) {
    const p = new URLSearchParams();
    if (text) p.set('q', text);
    p.set('k', el.k.value);
    for (const name of ['rerank', 'retrieval', 'compose']) if (el[name].value) p.set(name, el[name].value);
    history.replaceState(null, '', `${location.pathname}?${p}`);
  }

  function readUrl() {
    const p = new URLSearchParams(location.search);
    if (p.has('q')) el.q.value = p.get('q');
    const k = parseInt(p.get('k') || '', 10);
    if (k >= 1) el.k.value = String(Math.min(k, cfg.max_k));
    for (const name of ['rerank', 'retrieval', 'compose']) {
      const v = p.get(name);
      if (v && Array.from(el[name].options).some((o) => o.value === v)) el[name].value = v;
    }
    el.textWeight.disabled = el.compose.value !== 'weighted';
    return Boolean(el.q.value.trim());
  }

  function setBusy(busy) {
    el.results.setAttribute('aria-busy', String(busy));
    el.searchBtn.disabled = busy;
    if (busy) el.results.dataset.state = 'loading';
  }

  async function runSearch(opts = {}) {
    const text = el.q.value.trim();
    if (!text && !state.photo) {
      setStatus('Type something to search for, or choose a photo.', 'error');
      el.q.focus();
      return;
    }
    const k = Number(el.k.value);
    if (!Number.isInteger(k) || k < 1 || k > cfg.max_k) {
      setStatus(`Results (k) must be a whole number from 1 to ${cfg.max_k}.`, 'error');
      el.k.focus();
      return;
    }
    if (state.searchCtl) state.searchCtl.abort();
    const ctl = new AbortController();
    state.searchCtl = ctl;
    state.searched = true;
    const req = buildRequest(text);
    saveUrl(text);
    setBusy(true);
    setStatus(state.photo ? (text ? `Searching for “${text}” with the photo…` : 'Searching by photo…') : `Searching for “${text}”…`);
    let body = req;
    if (state.photo) {
      body = new FormData();
      body.append('image', state.photo, state.photo.name || 'photo.jpg');
      body.append('request', JSON.stringify(req)); // a plain field: the server takes one file part
    }
    const t0 = performance.now();
    try {
      const resp = await api('/v1/search', body, ctl.signal);
      if (ctl.signal.aborted) return;
      const rtt = (performance.now() - t0) / 1000;
      state.lastSearchError = null;
      renderResults(resp, rtt);
      el.results.dataset.state = 'done';
      setStatus(el.summary.textContent, 'quiet');
      if (opts.focusSummary) el.summary.focus();
    } catch (e) {
      if (ctl.signal.aborted || e.name === 'AbortError') return;
      state.lastSearchError = e;
      el.results.replaceChildren();
      el.summary.textContent = 'The search failed (see the message above).';
      el.queryDesc.hidden = true;
      el.results.dataset.state = 'error';
      setStatus(errorText(e), 'error');
    } finally {
      if (state.searchCtl === ctl) { state.searchCtl = null; setBusy(false); }
    }
  }

  function imageUrlOf(attrs) {
    const v = attrs[cfg.image_url_attribute];
    if (!v) return '';
    if (typeof v.string_value === 'string') return v.string_value;
    const list = v.list_value && v.list_value.values;
    return list && list.length ? avText(list[0]) : '';
  }

  const chipRank = (name) => (CHIP_ORDER.includes(name) ? CHIP_ORDER.indexOf(name) : CHIP_ORDER.length);

  function chipList(attrs) {
    const names = Object.keys(attrs).filter((n) => {
      const s = attrs[n] && attrs[n].string_value;
      return n !== 'title' && n !== cfg.image_url_attribute && typeof s === 'string' && s && s.length <= 40 &&
        !/^(https?:|\/)/.test(s) && !/(^|_)id$|Id$|^sku$/i.test(n);
    });
    names.sort((a, b) => chipRank(a) - chipRank(b) || a.localeCompare(b));
    if (!names.length) return null;
    return h('ul', { class: 'chips', 'aria-label': 'Attributes' }, names.slice(0, 5).map((n) =>
      h('li', { class: 'chip', title: n }, h('span', { class: 'vh', text: `${n}: ` }), attrs[n].string_value)));
  }

  function resultCard(r) {
    const attrs = r.attributes || {};
    const id = String(r.product_id);
    const title = avText(attrs.title) || r.caption || `Product ${id}`;
    const url = imageUrlOf(attrs);
    const thumb = h('div', { class: url ? 'thumb' : 'thumb no-img' });
    const img = h('img', { class: 'result-img', alt: title, loading: 'lazy', decoding: 'async' });
    if (url) {
      img.addEventListener('error', () => thumb.classList.add('no-img'), { once: true });
      img.src = url;
    }
    thumb.append(img);
    const sub = [];
    if (Number(r.retrieval_score)) sub.push(`retrieval ${Number(r.retrieval_score).toFixed(3)}`);
    if (Number(r.lexical_score)) sub.push(`lexical ${Number(r.lexical_score).toFixed(3)}`);
    const similar = h('button', { type: 'button', class: 'btn-secondary similar', disabled: !url },
      'Find similar', h('span', { class: 'vh', text: ` to ${title}` }));
    similar.addEventListener('click', () => findSimilar(id, url, title));
    return h('li', { class: 'result', 'data-id': id }, thumb,
      h('div', { class: 'body' },
        h('h3', { text: title }),
        h('p', { class: 'meta' }, h('span', { text: `#${id}` }),
          h('span', { class: 'score' }, h('span', { class: 'vh', text: 'score ' }), Number(r.score || 0).toFixed(3))),
        sub.length ? h('p', { class: 'sub', text: sub.join(' · ') }) : null,
        chipList(attrs),
        similar));
  }

  function renderResults(resp, rtt) {
    const results = resp.results || [];
    el.results.replaceChildren(...results.map(resultCard));
    if (!results.length) {
      el.results.append(h('li', { class: 'empty' }, h('strong', { text: 'No products match.' }),
        ' Try other words, another photo or fewer filters.'));
    }
    renderSummary(resp, results.length, rtt);
    renderQueryDesc(resp.query_description);
    renderTimings(resp.timings || [], rtt);
  }

  function renderSummary(resp, n, rtt) {
    const parts = [`${n} result${n === 1 ? '' : 's'}`];
    const mode = enumName(resp.retrieval_mode, 'RETRIEVAL_MODE_');
    if (mode) parts.push(mode);
    const compose = enumName(resp.compose_mode, 'COMPOSE_MODE_');
    if (compose) parts.push(`compose ${compose}`);
    const reranked = Number(resp.reranked || 0);
    if (reranked > 0) parts.push(`reranked ${reranked}`);
    parts.push(fmtMs(rtt));
    const kids = [parts.join(' · ')];
    if (resp.partial) kids.push(' ', h('span', { class: 'warn', text: 'partial' }));
    const degraded = resp.degraded_stages || [];
    if (degraded.length) kids.push(' ', h('span', { class: 'warn', text: `degraded: ${degraded.join(', ')}` }));
    el.summary.replaceChildren(...kids);
  }

  function attrsText(list) {
    return (list || []).map((a) => `${a.name}: ${a.value} (${Math.round((Number(a.confidence) || 0) * 100)}%)`).join(', ');
  }

  function renderQueryDesc(d) {
    if (!d || (!d.title && !(d.attributes || []).length)) { el.queryDesc.hidden = true; return; }
    const rest = attrsText(d.attributes);
    el.queryDesc.replaceChildren('The photo reads as: ', h('strong', { text: d.title || '(untitled)' }), rest ? ` — ${rest}` : '');
    el.queryDesc.hidden = false;
  }

  function renderTimings(timings, rtt) {
    const rows = timings.filter((t) => t && t.stage).map((t) => ({ name: t.stage, s: Number(t.seconds) || 0 }));
    rows.push({ name: 'round trip', s: rtt, total: true });
    const max = Math.max(...rows.map((r) => r.s), 1e-9);
    const label = `Stage timings: ${rows.map((r) => `${r.name} ${fmtMs(r.s)}`).join(', ')} (round trip measured in the browser)`;
    const chart = h('div', { class: 'tchart', role: 'img', 'aria-label': label }, rows.map((r) =>
      h('div', { class: r.total ? 'trow total' : 'trow' },
        h('span', { class: 'tname', title: r.name, text: r.name }),
        h('span', { class: 'tbar' }, h('span', { style: `width:${((r.s / max) * 100).toFixed(1)}%` })),
        h('span', { class: 'tval', text: fmtMs(r.s) }))));
    el.timings.replaceChildren(chart);
    if (rows.length < 2) el.timings.append(h('p', { class: 'muted small', text: 'The server reported no stage timings.' }));
  }

  async function findSimilar(id, url, title) {
    setStatus(`Fetching the photo of “${title}”…`);
    let file;
    try {
      file = await fetchImage(url, `${id}.${(url.split('?')[0].split('.').pop() || 'jpg').slice(0, 5)}`);
    } catch (e) {
      setStatus(`Could not fetch the photo of product ${id}: ${e.message}`, 'error');
      return;
    }
    if (!setPhoto(file)) return;
    el.q.value = '';
    runSearch({ focusSummary: true });
  }

  /* ---- describe ----------------------------------------------------------------------------- */

  function showDescribeMsg(msg, isError) {
    el.describeMsg.hidden = false;
    el.describeMsg.textContent = msg;
    el.describeMsg.className = isError ? 'err-box' : 'muted';
  }

  function clearDescription() {
    el.describeTitle.hidden = true;
    el.describeTitle.textContent = '';
    el.describeAttrs.replaceChildren();
    el.describeModel.textContent = '';
  }

  function renderDescription(d) {
    el.describeMsg.hidden = true;
    el.describeTitle.textContent = d.title || '(no title suggested)';
    el.describeTitle.hidden = false;
    el.describeAttrs.replaceChildren(...(d.attributes || []).map((a) => {
      const pct = Math.max(0, Math.min(100, Math.round((Number(a.confidence) || 0) * 100)));
      return h('li', null,
        h('span', { class: 'an', text: a.name }),
        h('span', { class: 'pct', text: `${pct}%` }),
        h('span', { class: 'av', text: a.value }),
        h('span', { class: 'tbar', 'aria-hidden': 'true' }, h('span', { style: `width:${pct}%` })));
    }));
    el.describeModel.replaceChildren();
    if (d.title) {
      el.describeModel.append(h('button', {
        type: 'button', class: 'btn-secondary more-btn',
        onclick: () => { el.q.value = d.title; runSearch(); el.q.focus(); },
      }, 'Search for this title'), ' ');
    }
    if (d.model) el.describeModel.append(`Model: ${d.model}`);
  }

  async function runDescribe() {
    const file = state.describePhoto;
    if (!file) {
      showDescribeMsg('Choose a photo to describe first.', true);
      el.describePhoto.focus();
      return;
    }
    if (state.describeCtl) state.describeCtl.abort();
    const ctl = new AbortController();
    state.describeCtl = ctl;
    el.describe.dataset.state = 'loading';
    el.describeBtn.disabled = true;
    el.describeOut.setAttribute('aria-busy', 'true');
    clearDescription();
    showDescribeMsg('Describing the photo…');
    const body = new FormData();
    body.append('image', file, file.name || 'photo.jpg');
    try {
      const resp = await api('/v1/describe', body, ctl.signal);
      if (ctl.signal.aborted) return;
      const d = resp.description || {};
      renderDescription(d);
      el.describe.dataset.state = 'done';
      setStatus(`Description ready: ${d.title || 'no title'}.`, 'quiet');
    } catch (e) {
      if (ctl.signal.aborted || e.name === 'AbortError') return;
      el.describe.dataset.state = 'error';
      showDescribeMsg(e.status === 412 ? `Describe is unavailable: ${e.message}` : errorText(e), true);
      setStatus(errorText(e), 'error');
    } finally {
      if (state.describeCtl === ctl) {
        state.describeCtl = null;
        el.describeBtn.disabled = false;
        el.describeOut.setAttribute('aria-busy', 'false');
      }
    }
  }

  /* ---- wiring ------------------------------------------------------------------------------- */

  function wire() {
    el.searchForm.addEventListener('submit', (e) => { e.preventDefault(); runSearch(); });
    el.photo.addEventListener('change', () => {
      const f = el.photo.files && el.photo.files[0];
      if (f) setPhoto(f, true);
    });
    el.photoClear.addEventListener('click', () => {
      setPhoto(null);
      el.q.focus();
      setStatus('Photo removed.', 'quiet');
    });
    wireDrop(el.drop, el.searchForm, (f) => {
      if (setPhoto(f)) setStatus('Photo set. Press Search (or Enter) to search with it.');
    });

    el.compose.addEventListener('change', () => { el.textWeight.disabled = el.compose.value !== 'weighted'; });
    el.textWeight.addEventListener('input', () => {
      state.weightTouched = true;
      el.textWeightOut.textContent = Number(el.textWeight.value).toFixed(2);
    });

    el.filters.addEventListener('submit', (e) => { e.preventDefault(); filtersChanged(); });
    el.filters.addEventListener('change', (e) => { if (e.target.matches('input')) filtersChanged(); });
    el.clearFilters.addEventListener('click', clearFilters);

    el.describeForm.addEventListener('submit', (e) => { e.preventDefault(); runDescribe(); });
    el.describePhoto.addEventListener('change', () => {
      const f = el.describePhoto.files && el.describePhoto.files[0];
      if (f) setDescribePhoto(f, true);
    });
    wireDrop(el.describeDrop, el.describeForm, (f) => setDescribePhoto(f));
    el.describeUse.addEventListener('click', () => { if (state.photo) setDescribePhoto(state.photo); runDescribe(); });

    el.authForm.addEventListener('submit', (e) => {
      e.preventDefault();
      setKey(el.apiKey.value.trim());
      setStatus(el.apiKey.value.trim() ? 'API key set for this browser tab.' : 'API key cleared.');
      if (state.facetsFailed) loadFacets();
      const failed = state.lastSearchError && [401, 403].includes(state.lastSearchError.status);
      if (failed || (!state.searched && el.q.value.trim())) runSearch();
    });

    // Pasting an image sets the search photo (or the describe photo when focus is in that panel).
    document.addEventListener('paste', (e) => {
      const file = Array.from((e.clipboardData && e.clipboardData.files) || []).find(isImage);
      if (!file) return;
      e.preventDefault();
      if (el.describe.contains(e.target)) setDescribePhoto(file);
      else if (setPhoto(file)) setStatus('Photo pasted. Press Search (or Enter) to search with it.');
    });
    // A file dropped outside the drop zones must not navigate away from the page.
    window.addEventListener('dragover', (e) => { if (isFileDrag(e)) e.preventDefault(); });
    window.addEventListener('drop', (e) => { if (isFileDrag(e)) e.preventDefault(); });
  }

  // Grey out what the loaded models cannot do (config.json says; unknown: leave everything on).
  function applyModels(models) {
    if (!models) return;
    const off = (select, value, why) => {
      const opt = select.querySelector(`option[value="${value}"]`);
      if (opt) { opt.disabled = true; opt.textContent += ` (${why})`; }
    };
    if (models.rerank === false) off(el.rerank, 'on', 'no reranker loaded');
    if (models.compose === false) off(el.compose, 'model', 'no composer loaded');
    if (models.describe === false) {
      el.describe.hidden = true;  // the panel exists only when generation does
      el.describeQuery.disabled = true;
      el.describeQuery.title = 'No caption model loaded';
    }
  }

  async function init() {
    wire();
    if (window.matchMedia('(max-width: 800px)').matches) el.filtersBox.open = false;
    const key = getKey();
    if (key) { el.apiKey.value = key; showAuth(); }
    try {
      const res = await fetch('/playground/config.json', { headers: { Accept: 'application/json' } });
      if (res.ok) Object.assign(cfg, await res.json());
    } catch { /* keep the defaults */ }
    cfg.max_k = Number(cfg.max_k) > 0 ? Number(cfg.max_k) : 1000;
    el.k.max = String(cfg.max_k);
    if (Number(el.k.value) > cfg.max_k) el.k.value = String(cfg.max_k);
    if (cfg.collection) el.collection.textContent = `collection: ${cfg.collection}`;
    if (cfg.auth_required) showAuth();
    applyModels(cfg.models);
    const runNow = readUrl();
    const facets = loadFacets();
    if (runNow && cfg.auth_required && !getKey()) setStatus('Enter an API key in the top bar to run the search.');
    else if (runNow) runSearch();
    await facets;
    document.body.dataset.state = 'ready';
  }

  init().catch((e) => {
    setStatus(errorText(e), 'error');
    document.body.dataset.state = 'ready';
  });
})();
