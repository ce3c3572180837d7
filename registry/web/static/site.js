// The exam-site console: today's exams of the site with the admission of
// each candidate and their exam passwords, and a live health grid of every
// source of the site (room cameras, each workstation's webcam and screen).
'use strict';
Object.assign(NS.dict.en, {
  'Сначала подтвердите личность: «Проверка личности»': 'Confirm the identity first: “Identity check”',
  'переподключение…': 'reconnecting…', 'переподключение… с': 'reconnecting… since',
  'Проверка личности': 'Identity check', 'Веб-камера недоступна': 'The webcam is not available', 'не проверялась': 'not checked',
  'личность подтверждена': 'identity confirmed', 'личность не подтверждена': 'identity not confirmed', 'Скан документа, удостоверяющего личность': 'Scan of the identity document',
  'Открыть скан (PDF)': 'Open the scan (PDF)', 'Нет изображения с веб-камеры': 'No picture from the webcam', 'Фото сделано': 'Photo taken',
  'Сначала загрузите скан документа': 'Upload a scan of the document first', 'Личность подтверждена': 'Identity confirmed', 'Отказано в допуске': 'Admission refused',
  'Документ в карточке кандидата': "Document in the candidate's record", 'Скан документа': 'Document scan', 'Веб-камера у стола допуска': 'Webcam at the admission desk',
  'Сфотографировать': 'Take a photo', 'Какой документ предъявлен': 'Document shown', 'Подтвердить личность': 'Confirm identity', 'Причина отказа': 'Reason for refusal',
  'Отказать в допуске': 'Refuse admission', 'Скана нет: загрузите его.': 'No scan: upload it.', 'Загрузить скан': 'Upload the scan', 'Итог проверки': 'Check',
  'Файл скана (PDF, JPEG, PNG, TIFF)': 'Scan file (PDF, JPEG, PNG, TIFF)',
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
      NS.el('h3', {}, NS.qualName(site.names, e.qualification), ' ', NS.el('span', {class: 'muted'}, NS.fmtSpan(e.starts_at, e.ends_at, site.names.tz[e.site]) + ' · ' + e.id)),
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
    } catch (x) { err.textContent = x.code === 'identity_not_confirmed' ? NS.t('Сначала подтвердите личность: «Проверка личности»') : x.message; }
  };
  const admit = NS.el('button', {type: 'button', class: 'btn small admit'}, NS.t('Допустить'));
  admit.addEventListener('click', () => set('admitted'));
  const refuse = NS.el('button', {type: 'button', class: 'btn small light refuse'}, NS.t('Отказать'));
  refuse.addEventListener('click', () => set('refused'));
  const check = NS.el('button', {type: 'button', class: 'btn small light identity'}, NS.t('Проверка личности'));
  check.addEventListener('click', () => openIdentity(e, c).catch((x) => { $('id-error').textContent = x.message; }));
  return NS.el('tr', {'data-candidate': id}, NS.el('td', {}, candName(c.candidate)), NS.el('td', {}, c.webcam + ' / ' + c.screen),
    NS.el('td', {}, state), NS.el('td', {class: 'actions'}, check, ' ', admit, reason, refuse, err));
}

// The identity check at admission: the candidate's identity document
// scans beside the live picture of the desk's webcam; a photo from it, the
// document checked and "identity confirmed", or a refusal with its reason
// (which refuses the admission); a missing scan is uploaded here.
const idState = {exam: null, cand: null, photo: '', stream: null};
const idPath = () => '/api/v1/exams/' + encodeURIComponent(idState.exam) + '/candidates/' + encodeURIComponent(idState.cand) + '/identity';

async function openIdentity(e, c) {
  idState.exam = e.id; idState.cand = c.candidate.id; idState.photo = '';
  $('identity').classList.remove('hidden');
  $('identity').dataset.candidate = c.candidate.id;
  $('id-title').textContent = NS.t('Проверка личности') + ': ' + candName(c.candidate);
  $('id-error').textContent = ''; $('id-state').textContent = ''; $('id-photo-state').textContent = '';
  await loadIdentity();
  $('identity').scrollIntoView();
  if (!idState.stream && navigator.mediaDevices) {
    try {
      idState.stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
      $('id-live').srcObject = idState.stream;
    } catch (x) { $('id-photo-state').textContent = NS.t('Веб-камера недоступна') + ': ' + x.message; }
  }
}

async function loadIdentity() {
  const id = await NS.api('GET', idPath());
  $('id-document').textContent = (id.candidate && id.candidate.document) || '';
  const sel = $('id-doc-select');
  sel.textContent = '';
  const scans = (id.documents || []).filter((d) => d.kind !== 'photo');
  for (const d of scans) sel.append(NS.el('option', {value: d.id}, NS.tr(NS.docKinds, d.kind) + ' · ' + NS.fmtDate(Date.parse(d.uploaded_at))));
  $('id-noscan').classList.toggle('hidden', scans.length > 0);
  const check = id.check;
  $('id-check').textContent = !check ? NS.t('не проверялась') : check.confirmed
    ? NS.t('личность подтверждена') + ' · ' + check.checked_by + ' · ' + NS.fmtDate(Date.parse(check.checked_at))
    : NS.t('личность не подтверждена') + ': ' + check.reason + ' · ' + check.checked_by;
  $('id-check').dataset.confirmed = check ? String(check.confirmed) : '';
  if (scans.length) await showScan(scans.find((d) => d.id === sel.value) || scans[0]);
  else $('id-scan').textContent = '';
}

async function showScan(d) {
  const resp = await fetch(d.url || (idPath() + '/documents/' + encodeURIComponent(d.id)), {headers: {Authorization: 'Bearer ' + NS.token()}});
  if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const box = $('id-scan');
  box.textContent = '';
  if (blob.type.startsWith('image/')) box.append(NS.el('img', {src: url, class: 'doc-scan', alt: NS.t('Скан документа, удостоверяющего личность')}));
  else box.append(NS.el('a', {href: url, download: NS.tr(NS.docKinds, d.kind) + '.pdf'}, NS.t('Открыть скан (PDF)')));
}

$('id-doc-select').addEventListener('change', () => loadIdentity().catch((x) => { $('id-error').textContent = x.message; }));
$('id-snap').addEventListener('click', () => NS.busy($('id-snap'), $('id-error'), async () => {
  const v = $('id-live');
  if (!v.videoWidth) throw new Error(NS.t('Нет изображения с веб-камеры'));
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth; canvas.height = v.videoHeight;
  canvas.getContext('2d').drawImage(v, 0, 0);
  const blob = await new Promise((res) => canvas.toBlob(res, 'image/jpeg', 0.85));
  const resp = await fetch(idPath() + '/photo?filename=photo.jpg', {method: 'POST', body: blob,
    headers: {Authorization: 'Bearer ' + NS.token(), 'Content-Type': 'image/jpeg'}});
  const doc = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(doc.error || resp.statusText);
  idState.photo = doc.id;
  $('id-photo-state').textContent = NS.t('Фото сделано') + ' ' + NS.fmtTime(Date.now());
}));
$('id-upload-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('id-upload'), $('id-error'), async () => {
    const f = $('id-file').files[0];
    if (!f) throw new Error(NS.t('Выберите файл'));
    // Sent as "passport" and its extension: the file's own name may name the person.
    const resp = await fetch(idPath() + '/documents?filename=' + encodeURIComponent('passport' + ((/\.[a-z0-9]{1,5}$/i.exec(f.name) || [''])[0].toLowerCase())),
      {method: 'POST', body: f, headers: {Authorization: 'Bearer ' + NS.token(), 'Content-Type': f.type || 'application/octet-stream'}});
    if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
    $('id-file').value = '';
    await loadIdentity();
  });
});
$('id-confirm').addEventListener('click', () => NS.busy($('id-confirm'), $('id-error'), async () => {
  const body = {confirmed: true, document: $('id-doc-select').value};
  if (!body.document) throw new Error(NS.t('Сначала загрузите скан документа'));
  if (idState.photo) body.photo = idState.photo;
  await NS.api('PUT', idPath(), body);
  await loadIdentity();
  $('id-state').textContent = NS.t('Личность подтверждена');
}));
$('id-refuse').addEventListener('click', () => NS.busy($('id-refuse'), $('id-error'), async () => {
  const reason = $('id-reason').value.trim();
  if (!reason) { $('id-reason').focus(); throw new Error(NS.t('Укажите причину отказа')); }
  await NS.api('PUT', idPath(), {confirmed: false, reason});
  await loadIdentity();
  await loadExams();
  $('id-state').textContent = NS.t('Отказано в допуске');
}));
$('id-close').addEventListener('click', () => {
  $('identity').classList.add('hidden');
  if (idState.stream) { idState.stream.getTracks().forEach((tr) => tr.stop()); idState.stream = null; }
});

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
