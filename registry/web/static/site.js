// The exam-site console: today's exams of the site with the admission of
// each candidate and their exam passwords, and a live health grid of every
// source of the site (room cameras, each workstation's webcam and screen).
'use strict';
Object.assign(NS.dict.en, {
  'переподключение…': 'reconnecting…', 'переподключение… с': 'reconnecting… since',
});
const $ = (id) => document.getElementById(id);
const q = (from, to) => '?from=' + encodeURIComponent(new Date(from).toISOString()) + '&to=' + encodeURIComponent(new Date(to).toISOString());
const admissionNames = NS.admissionNames;
const kindNames = {room: 'камера помещения', webcam: 'веб-камера', screen: 'экран'};
const site = window.site = {me: null, exams: [], cells: {}, passwords: [], names: {qual: {}, site: {}}};

const candName = (c) => c.full_name || [c.last_name, c.first_name, c.middle_name].filter(Boolean).join(' ');

async function loadExams() {
  const day = new Date(); day.setHours(0, 0, 0, 0);
  const exams = await NS.api('GET', '/api/v1/exams' + q(day.getTime(), day.getTime() + 864e5)) || [];
  site.exams = exams.filter((e) => e.site === site.me.org || !site.me.org);
  const box = $('exams');
  box.textContent = '';
  $('empty').textContent = site.exams.length ? '' : NS.t('Сегодня экзаменов нет');
  for (const e of site.exams) {
    const cands = await NS.api('GET', '/api/v1/exams/' + encodeURIComponent(e.id) + '/candidates') || [];
    const tbody = NS.el('tbody', {});
    for (const c of cands) tbody.append(candidateRow(e, c));
    const pw = NS.el('button', {class: 'btn', type: 'button', id: 'passwords-' + e.id, 'data-i18n': ''}, NS.t('Выдать пароли допущенным и напечатать'));
    pw.addEventListener('click', () => passwords(e, cands).catch((err) => { $('error').textContent = err.message; }));
    box.append(NS.el('div', {class: 'card exam-card', 'data-exam': e.id},
      NS.el('h3', {}, NS.qualName(site.names, e.qualification), ' ', NS.el('span', {class: 'muted'}, NS.fmtSpan(e.starts_at, e.ends_at) + ' · ' + e.id)),
      NS.el('table', {class: 'list'}, NS.el('thead', {}, NS.el('tr', {}, ...['Кандидат', 'Рабочее место', 'Допуск', 'Действие'].map((h) => NS.el('th', {}, NS.t(h))))), tbody),
      pw));
  }
}

function candidateRow(e, c) {
  const id = c.candidate.id;
  const state = NS.el('span', {class: 'admission ' + c.admission}, NS.t(admissionNames[c.admission] || c.admission));
  if (c.refusal_reason) state.append(': ' + c.refusal_reason);
  if (c.password_issued_at) state.append(NS.el('span', {class: 'muted'}, ' · ' + NS.t('пароль выдан') + ' ' + NS.fmtTime(Date.parse(c.password_issued_at))));
  const reason = NS.el('input', {type: 'text', class: 'reason', placeholder: NS.t('причина отказа'), 'aria-label': NS.t('причина отказа') + ': ' + candName(c.candidate)});
  const err = NS.el('span', {class: 'error'});
  const set = async (status) => {
    err.textContent = '';
    if (status === 'refused' && !reason.value.trim()) { err.textContent = NS.t('Укажите причину отказа'); reason.focus(); return; }
    try {
      await NS.api('PUT', '/api/v1/exams/' + encodeURIComponent(e.id) + '/candidates/' + encodeURIComponent(id) + '/admission',
        {status, reason: status === 'refused' ? reason.value.trim() : ''});
      await loadExams();
    } catch (x) { err.textContent = x.message; }
  };
  const admit = NS.el('button', {type: 'button', class: 'btn small admit'}, NS.t('Допустить'));
  admit.addEventListener('click', () => set('admitted'));
  const refuse = NS.el('button', {type: 'button', class: 'btn small light refuse'}, NS.t('Отказать'));
  refuse.addEventListener('click', () => set('refused'));
  return NS.el('tr', {'data-candidate': id}, NS.el('td', {}, candName(c.candidate)), NS.el('td', {}, c.webcam + ' / ' + c.screen),
    NS.el('td', {}, state), NS.el('td', {class: 'actions'}, admit, reason, refuse, err));
}

// passwords generates a new exam password for every admitted candidate of
// exam e (each shown once) and prints the list.
async function passwords(e, cands) {
  const rows = $('print-rows');
  rows.textContent = '';
  site.passwords = [];
  for (const c of cands.filter((x) => x.admission === 'admitted')) {
    const p = await NS.api('POST', '/api/v1/exams/' + encodeURIComponent(e.id) + '/candidates/' + encodeURIComponent(c.candidate.id) + '/password');
    site.passwords.push({candidate: c.candidate.id, password: p.password});
    rows.append(NS.el('tr', {}, NS.el('td', {}, candName(c.candidate)), NS.el('td', {}, c.webcam + ' / ' + c.screen),
      NS.el('td', {class: 'password'}, p.password), NS.el('td', {}, NS.fmtDate(Date.parse(p.valid_from)) + ' – ' + NS.fmtTime(Date.parse(p.valid_until)))));
  }
  $('print-meta').textContent = NS.qualName(site.names, e.qualification) + ' · ' + (site.names.site[e.site] || e.site) + ' · ' + NS.fmtDate(Date.parse(e.starts_at)) + ' · ' + e.id;
  document.body.classList.add('has-print');
  await loadExams();
  if (!navigator.webdriver) window.print();
}

// The health grid: every device of the site, polled every few seconds.
const POLL = 2000;
function liveWindow(dur) { return Math.max(2 * dur + 1, 4) * 1000; }
// A source that is not live is reconnecting when it comes back by itself:
// ingest pulls it and its session is not open, or its publisher (a camera,
// the candidate's page) lost the connection less than RECONNECT ago.
const RECONNECT = 2 * 60e3;
function reconnecting(d, now) {
  const s = d.session || {state: 'none'};
  return (d.pulled && s.state !== 'open') || (s.state === 'lost' && now - Date.parse(s.at) < RECONNECT);
}

async function buildGrid() {
  const devices = await NS.api('GET', '/api/v1/sites/' + encodeURIComponent(site.me.org) + '/devices') || [];
  const order = {room: 0, webcam: 1, screen: 2};
  devices.sort((a, b) => (order[a.kind] - order[b.kind]) || a.name.localeCompare(b.name));
  for (const d of devices) {
    const thumb = NS.el('div', {class: 'hthumb'});
    const state = NS.el('div', {class: 'hstate st-wait'}, '…');
    const facts = NS.el('div', {class: 'muted hfacts'});
    const cell = NS.el('div', {class: 'hcell', 'data-stream': d.stream, 'data-state': 'unknown'}, thumb,
      NS.el('div', {class: 'hname'}, NS.el('b', {}, d.name), ' ', NS.el('span', {class: 'muted'}, NS.t(kindNames[d.kind] || d.kind))), state, facts);
    $('health').append(cell);
    site.cells[d.stream] = {d, cell, thumb, state, facts, lastSeq: null, thumbAt: 0};
  }
}

async function pollCell(c) {
  const now = Date.now();
  let segs;
  try { segs = await NS.api('GET', '/api/v1/streams/' + c.d.stream + '/segments' + q(now - 30 * 60e3, now + 60e3)) || []; } catch (e) { c.facts.textContent = e.message; return; }
  const last = segs[segs.length - 1];
  const end = last ? Date.parse(last.start) + last.duration * 1000 : 0;
  const live = last && now - end < liveWindow(last.duration);
  const show = (state, cls, text) => { c.cell.dataset.state = state; c.state.className = 'hstate ' + cls; c.state.textContent = text; };
  if (live) {
    show('live', 'st-live', NS.t('в эфире'));
  } else if (reconnecting(c.d, now)) {
    const s = c.d.session || {};
    const since = s.state !== 'open' && s.at ? Date.parse(s.at) : end;
    show('reconnecting', 'st-wait', since ? NS.t('переподключение… с') + ' ' + NS.fmtTime(since) : NS.t('переподключение…'));
  } else if (last) {
    show('silent', 'st-bad', NS.t('не в эфире, молчит с') + ' ' + NS.fmtTime(end));
  } else {
    show('none', 'st-bad', NS.t('нет записи за 30 мин'));
  }
  if (!last) { c.facts.textContent = ''; return; }
  const age = Math.max(0, (now - end) / 1000);
  const recent = segs.slice(-5);
  const bytes = recent.reduce((s, x) => s + x.bytes, 0), secs = recent.reduce((s, x) => s + x.duration, 0);
  c.facts.textContent = NS.t('посл. сегмент') + ': ' + age.toFixed(0) + ' ' + NS.t('с назад') + ' · ' + (secs ? (bytes * 8 / secs / 1000).toFixed(0) : '–') + ' ' + NS.t('кбит/с');
  if (last.sequence !== c.lastSeq && now - c.thumbAt > 10000) {
    c.lastSeq = last.sequence; c.thumbAt = now;
    try {
      const from = Date.parse(last.start);
      const vtt = await NS.fetchText('/api/v1/streams/' + c.d.stream + '/thumbnails.vtt' + q(from, from + last.duration * 1000 + 1000));
      const cues = vtt.split('\n').map((l) => l.trim()).filter((l) => l.includes('#xywh='));
      if (cues.length) {
        const [url, frag] = cues[cues.length - 1].split('#xywh=');
        const [x, y, w, h] = frag.split(',').map(Number);
        const scale = 120 / w;
        Object.assign(c.thumb.style, {backgroundImage: 'url("' + url + '")', backgroundPosition: (-x * scale) + 'px ' + (-y * scale) + 'px',
          backgroundSize: 'auto', width: '120px', height: (h * scale) + 'px', zoom: ''});
        if (scale !== 1) {
          // Scale the sprite: load it once to know its size.
          const img = new Image();
          img.onload = () => { c.thumb.style.backgroundSize = (img.naturalWidth * scale) + 'px ' + (img.naturalHeight * scale) + 'px'; };
          img.src = url;
        }
        c.thumb.classList.add('has');
      }
    } catch (e) { /* no thumbnails yet */ }
  }
}

async function poll() {
  // The devices' sessions (and whether ingest pulls them) tell a source
  // that is reconnecting from one that stopped.
  const devices = await NS.api('GET', '/api/v1/sites/' + encodeURIComponent(site.me.org) + '/devices') || [];
  for (const d of devices) if (site.cells[d.stream]) site.cells[d.stream].d = d;
  await Promise.all(Object.values(site.cells).map(pollCell));
  $('health-time').textContent = NS.t('обновлено') + ' ' + NS.fmtTime(Date.now());
  site.polled = (site.polled || 0) + 1;
}

(async () => {
  site.me = await NS.start();
  NS.zoneNote($('zone'));
  site.names = await NS.names();
  await loadExams();
  site.loaded = true;
  document.body.dataset.loaded = 'true';
  await buildGrid();
  await poll();
  setInterval(() => poll().catch((e) => { $('error').textContent = e.message; }), POLL);
})().catch((e) => { $('error').textContent = e.message; });
