// The expert's review of one candidate's exam: every stream that is evidence
// (room cameras, webcam, screen) plays side by side on the one clock of the
// exam window; one timeline shows footage, gaps, observations and marks.
'use strict';
if (!NS.token()) location.href = '/ui/';
NS.langButton(document.getElementById('lang'));
document.getElementById('logout').addEventListener('click', NS.logout);
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const exam = params.get('exam'), candidate = params.get('candidate');
const examPath = '/api/v1/exams/' + encodeURIComponent(exam) + '/candidates/' + encodeURIComponent(candidate);
const SPEEDS = [1, 2, 4, 8, 16];
const sourceNames = {room: 'Помещение', webcam: 'Веб-камера', screen: 'Экран'};

const st = {origin: 0, duration: 0, t: 0, playing: false, rate: 1, variant: 'review', views: [], marks: [], me: null,
  holdSince: 0, last: performance.now()};
window.review = st; // read by the browser tests

// askPurpose asks once per candidate-exam and session why the recordings
// are opened; the API audits every access with it.
function askPurpose() {
  const key = 'purpose:' + exam + '/' + candidate;
  const saved = sessionStorage.getItem(key);
  if (saved) return Promise.resolve(saved);
  return new Promise((resolve) => {
    const d = $('purpose-dialog');
    $('purpose-form').addEventListener('submit', () => {
      const p = $('purpose').value.trim();
      sessionStorage.setItem(key, p);
      resolve(p);
    });
    d.addEventListener('cancel', (e) => e.preventDefault());
    d.showModal();
  });
}

const wallOf = (t) => st.origin + t * 1000;
const timeOf = (w) => (w - st.origin) / 1000;

async function loadVariant(view) {
  const list = (from, to) => NS.fetchText(NS.withPurpose('/api/v1/streams/' + view.stream + '/playlist.m3u8?from=' +
    encodeURIComponent(new Date(from).toISOString()) + '&to=' + encodeURIComponent(new Date(to).toISOString()) +
    (st.variant === 'review' ? '&variant=review' : ''))).then((text) => parsePlaylist(text, location.origin));
  const end = st.origin + st.duration * 1000;
  const all = list(st.origin, end).catch((e) => { view.error = e.message; return []; });
  // The first picture needs only the footage at the clock: the playlist
  // of the next minute comes long before the one of a 4-hour exam (2 400
  // segments), and the player starts on it.
  const w = Math.min(Math.max(wallOf(st.t), st.origin), end - 1);
  const head = list(w, Math.min(w + 60000, end)).then((segs) => (segs.length ? segs : all), () => all);
  await view.player.load(head);
  view.player.seek(st.t);
  if (view.player.covered(st.t)) view.video.currentTime = st.t;
  view.segs = await all;
  view.player.update(view.segs);
}

async function loadSide(view) {
  const q = '?from=' + encodeURIComponent(new Date(st.origin).toISOString()) + '&to=' + encodeURIComponent(new Date(st.origin + st.duration * 1000).toISOString());
  try { view.obs = await NS.api('GET', NS.withPurpose('/api/v1/streams/' + view.stream + '/observations' + q)) || []; } catch (e) { view.obs = []; }
  try {
    const vtt = await NS.fetchText(NS.withPurpose('/api/v1/streams/' + view.stream + '/thumbnails.vtt' + q));
    view.thumbs = parseVTT(vtt, view.segs);
  } catch (e) { view.thumbs = []; }
}

// parseVTT returns the thumbnail cues of a WebVTT track, moved from the
// playlist's timeline (gaps collapsed) to the wall clock by the playlist's
// segments.
function parseVTT(text, segs) {
  const ts = (s) => { const p = s.trim().split(':').map(parseFloat); return p.length === 3 ? p[0] * 3600 + p[1] * 60 + p[2] : p[0] * 60 + p[1]; };
  let cum = 0;
  const runs = segs.map((s) => { const r = {cum, s}; cum += s.dur; return r; });
  const toWall = (x) => { for (const r of runs) if (x < r.cum + r.s.dur + 1e-3) return r.s.start + (x - r.cum) * 1000; return null; };
  const out = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[i].trim());
    if (!m || !lines[i + 1]) continue;
    const [url, frag] = lines[i + 1].trim().split('#xywh=');
    const [x, y, w, h] = (frag || '0,0,160,90').split(',').map(Number);
    const from = toWall(ts(m[1])), to = toWall(Math.max(ts(m[1]), ts(m[2]) - 1e-3));
    if (from !== null) out.push({from, to: to === null ? from : to, url, x, y, w, h});
  }
  return out;
}

function buildViews(streams) {
  const order = {room: 0, webcam: 1, screen: 2};
  streams.sort((a, b) => (order[a.source] - order[b.source]) || a.stream.localeCompare(b.stream));
  for (const s of streams) {
    const video = NS.el('video', {muted: '', playsinline: ''});
    video.muted = true;
    const state = NS.el('span', {class: 'state'});
    const box = NS.el('div', {class: 'view', 'data-stream': s.stream, 'data-nodata': NS.t('нет записи')},
      video, NS.el('span', {class: 'label'}, NS.t(sourceNames[s.source] || s.source) + ' · ' + s.stream), state);
    box.addEventListener('click', () => { video.muted = !video.muted; });
    $('views').append(box);
    const view = {stream: s.stream, source: s.source, video, box, state, segs: [], obs: [], thumbs: [],
      player: new Player(video, st.origin, st.duration)};
    st.views.push(view);
    $('mark-stream').append(NS.el('option', {value: s.stream}, NS.t(sourceNames[s.source] || s.source) + ' · ' + s.stream));
  }
  const cam = st.views.find((v) => v.source === 'webcam');
  if (cam) $('mark-stream').value = cam.stream;
}

// The clock. The first view that plays leads; the others follow it, gently
// (playback rate) for small drifts and by seeking for large ones. In a gap
// of every stream the clock runs on its own (or jumps, when skipping gaps).
function tick() {
  const now = performance.now(), dt = (now - st.last) / 1000;
  st.last = now;
  const active = st.views.filter((v) => v.player.covered(st.t));
  if (st.playing) {
    const waiting = active.filter((v) => v.player.covered(st.t + 0.4) && !v.player.ready(v.video.currentTime));
    if (waiting.length && (!st.holdSince || now - st.holdSince < 4000)) {
      if (!st.holdSince) st.holdSince = now;
      for (const v of st.views) if (!v.video.paused) v.video.pause();
    } else {
      const leader = active.find((v) => !v.video.paused && !v.video.seeking && Math.abs(v.video.currentTime - st.t) < 1.5);
      if (leader) st.t = leader.video.currentTime;
      else if (!st.holdSince || active.length === 0) st.t += dt * st.rate;
      st.holdSince = 0;
      if (active.length === 0 && $('skip-gaps').checked) {
        const w = wallOf(st.t);
        const next = Math.min(...st.views.flatMap((v) => v.segs.filter((s) => s.start > w).map((s) => s.start)));
        if (Number.isFinite(next)) seekTo(timeOf(next) + 0.05); else pause();
      }
      if (st.t >= st.duration) { st.t = st.duration; pause(); }
    }
  }
  const lead = st.views.find((v) => v.player.covered(st.t) && !v.video.paused);
  for (const v of st.views) {
    v.player.seek(st.t);
    const covered = v.player.covered(st.t);
    v.box.classList.toggle('nodata', !covered);
    if (!covered) { if (!v.video.paused) v.video.pause(); v.state.textContent = ''; continue; }
    const diff = v.video.currentTime - st.t;
    if (Math.abs(diff) > (st.playing ? 0.35 : 0.04) && !v.video.seeking) v.video.currentTime = st.t;
    if (st.playing && !st.holdSince) {
      const r = v === lead ? st.rate : st.rate * (1 - Math.max(-0.3, Math.min(0.3, diff)));
      v.video.playbackRate = Math.max(0.0625, Math.min(16, r));
      if (v.video.paused) v.video.play().catch(() => {});
    } else if (!v.video.paused) v.video.pause();
    v.state.textContent = v.player.error ? '⚠' : (st.holdSince && st.playing ? '…' : '');
  }
  $('clock').textContent = st.origin ? NS.fmtTime(wallOf(st.t)) + ' · ' + fmtOffset(st.t) : '';
  $('playhead').style.left = 'calc(110px + (100% - 110px) * ' + (st.t / st.duration || 0) + ')';
}
const fmtOffset = (t) => { t = Math.max(0, Math.floor(t)); return Math.floor(t / 60) + ':' + String(t % 60).padStart(2, '0'); };

function play() { st.playing = true; st.holdSince = 0; $('play').textContent = NS.t('Пауза'); }
function pause() { st.playing = false; for (const v of st.views) v.video.pause(); $('play').textContent = NS.t('Воспроизвести'); }
function seekTo(t) {
  st.t = Math.max(0, Math.min(st.duration, t));
  st.holdSince = 0;
  for (const v of st.views) { v.player.seek(st.t); if (v.player.covered(st.t)) v.video.currentTime = st.t; }
  tick();
}
function setRate(r) {
  st.rate = r;
  for (const b of $('speeds').children) b.classList.toggle('on', Number(b.dataset.rate) === r);
}
function nextObservation() {
  const w = wallOf(st.t) + 500;
  const starts = st.views.flatMap((v) => v.obs.map((o) => Date.parse(o.start))).filter((s) => s > w);
  if (starts.length) seekTo(timeOf(Math.min(...starts)));
}

// The timeline: a lane of marks, then a lane per stream with its footage,
// its gaps (the lane's background) and its observations.
function drawTimeline() {
  const tl = $('timeline');
  for (const l of [...tl.querySelectorAll('.lane')]) l.remove();
  const pct = (w) => (Math.max(0, Math.min(1, (w - st.origin) / (st.duration * 1000))) * 100) + '%';
  const place = (e, from, to) => { e.style.left = pct(from); if (to !== undefined) e.style.width = 'calc(' + pct(to) + ' - ' + pct(from) + ')'; return e; };
  const marks = NS.el('div', {class: 'lane marks'}, NS.el('span', {class: 'name'}, NS.t('Отметки')));
  for (const m of st.marks) marks.append(place(NS.el('div', {class: 'mark ' + m.kind, title: NS.fmtTime(Date.parse(m.at)) + ' ' + m.text}), Date.parse(m.at)));
  tl.append(marks);
  for (const v of st.views) {
    const lane = NS.el('div', {class: 'lane', 'data-stream': v.stream}, NS.el('span', {class: 'name', title: v.stream}, NS.t(sourceNames[v.source] || v.source)));
    let run = null;
    for (const s of v.segs) {
      if (run && s.start - run.end < 1000) run.end = s.end;
      else { if (run) lane.append(place(NS.el('div', {class: 'have'}), run.start, run.end)); run = {start: s.start, end: s.end}; }
    }
    if (run) lane.append(place(NS.el('div', {class: 'have'}), run.start, run.end));
    for (const o of v.obs) {
      const e = place(NS.el('div', {class: 'obs ' + o.kind, title: o.kind + ' ' + NS.fmtTime(Date.parse(o.start)) + (o.detail ? ' — ' + o.detail : '')}), Date.parse(o.start), Date.parse(o.end));
      lane.append(e);
    }
    tl.append(lane);
  }
}

function timelineTime(ev) {
  const r = $('timeline').getBoundingClientRect();
  return ((ev.clientX - r.left - 110) / (r.width - 110)) * st.duration;
}
const thumb = NS.el('div', {class: 'thumb hidden'}, NS.el('span', {}));
document.body.append(thumb);
$('timeline').addEventListener('click', (ev) => { const t = timelineTime(ev); if (t >= 0) seekTo(t); });
$('timeline').addEventListener('mouseleave', () => thumb.classList.add('hidden'));
$('timeline').addEventListener('mousemove', (ev) => {
  const t = timelineTime(ev), w = wallOf(t);
  const laneEl = ev.target.closest('.lane[data-stream]');
  const views = laneEl ? st.views.filter((v) => v.stream === laneEl.dataset.stream) : st.views;
  let cue = null;
  for (const v of views) { cue = v.thumbs.find((c) => c.from <= w && w <= c.to + 1000); if (cue) break; }
  if (!cue || t < 0) { thumb.classList.add('hidden'); return; }
  thumb.classList.remove('hidden');
  Object.assign(thumb.style, {width: cue.w + 'px', height: cue.h + 'px', left: (ev.clientX - cue.w / 2) + 'px', top: ($('timeline').getBoundingClientRect().top - cue.h - 8) + 'px',
    backgroundImage: 'url("' + cue.url + '")', backgroundPosition: (-cue.x) + 'px ' + (-cue.y) + 'px'});
  thumb.firstChild.textContent = NS.fmtTime(w);
});

document.addEventListener('keydown', (ev) => {
  if (ev.target.closest('input, textarea, select, dialog')) return;
  const step = ev.shiftKey ? 30 : 5;
  if (ev.key === ' ') { ev.preventDefault(); st.playing ? pause() : play(); }
  else if (ev.key === 'ArrowRight') { ev.preventDefault(); seekTo(st.t + step); }
  else if (ev.key === 'ArrowLeft') { ev.preventDefault(); seekTo(st.t - step); }
  else if (ev.key === 'n' || ev.key === 'т') nextObservation();
  else if (ev.key === ']') setRate(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(st.rate) + 1)]);
  else if (ev.key === '[') setRate(SPEEDS[Math.max(0, SPEEDS.indexOf(st.rate) - 1)]);
});
$('play').addEventListener('click', () => (st.playing ? pause() : play()));
$('next-obs').addEventListener('click', nextObservation);
for (const r of SPEEDS) {
  const b = NS.el('button', {type: 'button', id: 'speed-' + r, 'data-rate': String(r)}, r + '×');
  b.addEventListener('click', () => setRate(r));
  $('speeds').append(b);
}
setRate(1);
async function switchVariant(variant) {
  if (variant === st.variant) return;
  st.variant = variant;
  $('variant-review').classList.toggle('on', variant === 'review');
  $('variant-raw').classList.toggle('on', variant === 'raw');
  await Promise.all(st.views.map(loadVariant));
}
$('variant-review').addEventListener('click', () => switchVariant('review'));
$('variant-raw').addEventListener('click', () => switchVariant('raw'));

async function loadReview() {
  st.marks = await NS.api('GET', examPath + '/marks') || [];
  st.marks.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const ul = $('marks');
  ul.textContent = '';
  for (const m of st.marks) {
    const li = NS.el('li', {class: 'mark-item'}, NS.el('span', {class: 'k ' + m.kind}, NS.t(m.kind === 'violation' ? 'нарушение' : 'заметка')), ' ',
      NS.fmtTime(Date.parse(m.at)), ' ', NS.el('span', {class: 'text'}, m.text), ' ', NS.el('span', {class: 'muted'}, m.expert));
    li.addEventListener('click', () => seekTo(timeOf(Date.parse(m.at))));
    ul.append(li);
  }
  const review = await NS.api('GET', examPath + '/review');
  const mine = (review.verdicts || []).find((v) => v.expert === st.me.login);
  if (mine) {
    $(mine.procedure_confirmed ? 'verdict-yes' : 'verdict-no').checked = true;
    $('verdict-reasons').value = mine.reasons || '';
    $('verdict-state').textContent = NS.t('Сохранено') + ' ' + NS.fmtDate(Date.parse(mine.decided_at)) + ': ' +
      NS.t(mine.procedure_confirmed ? 'Процедура соблюдена' : 'Процедура нарушена');
  }
  $('others').textContent = (review.verdicts || []).filter((v) => v.expert !== st.me.login)
    .map((v) => v.expert + ': ' + NS.t(v.procedure_confirmed ? 'Процедура соблюдена' : 'Процедура нарушена')).join('; ') || '—';
  drawTimeline();
}

$('mark-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('mark-error').textContent = '';
  try {
    await NS.api('POST', examPath + '/marks', {at: new Date(wallOf(st.t)).toISOString(), kind: $('mark-kind').value,
      text: $('mark-text').value.trim(), stream: $('mark-stream').value});
    $('mark-text').value = '';
    await loadReview();
  } catch (e) { $('mark-error').textContent = e.message; }
});
$('verdict-save').addEventListener('click', async () => {
  $('verdict-error').textContent = '';
  const yes = $('verdict-yes').checked, no = $('verdict-no').checked;
  if (!yes && !no) { $('verdict-error').textContent = NS.t('Выберите заключение'); return; }
  if (no && !$('verdict-reasons').value.trim()) { $('verdict-error').textContent = NS.t('Укажите причины'); return; }
  try {
    await NS.api('PUT', examPath + '/verdict', {procedure_confirmed: yes, reasons: $('verdict-reasons').value.trim()});
    await loadReview();
  } catch (e) { $('verdict-error').textContent = e.message; }
});

// showTitle names the candidate, the qualification, the site and the
// exam's time in the header: from the expert's queue, or for other roles
// from the exam and the registers they read.
async function showTitle() {
  let text = '';
  if (st.me.role === 'expert') {
    const q = (await NS.api('GET', '/api/v1/review-queue?exam=' + encodeURIComponent(exam)).catch(() => []) || []).find((x) => x.candidate.id === candidate);
    if (q) text = q.candidate.name + ' · ' + q.qualification.name + ' · ' + (q.site.name || q.site.id) + ' · ' + NS.fmtSpan(q.starts_at, q.ends_at, q.time_zone);
  } else {
    const [e, c, n] = await Promise.all([NS.api('GET', '/api/v1/exams/' + encodeURIComponent(exam)), NS.api('GET', examPath), NS.names()]).catch(() => []);
    if (e && c) text = NS.candName(c.candidate) + ' · ' + (n.qual[e.qualification] || e.qualification) + ' · ' + (n.site[e.site] || e.site) + ' · ' + NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site]);
  }
  $('title').textContent = NS.t('Просмотр записи') + ': ' + (text || exam + ' · ' + candidate);
  document.title = 'nokstream — ' + (text || NS.t('Просмотр записи'));
}

(async () => {
  // Who is reviewing and what there is to review, asked together.
  const me = NS.api('GET', '/api/v1/auth/me');
  me.catch(() => {}); // awaited below, after the purpose
  NS.purpose = await askPurpose();
  const [who, media] = await Promise.all([me, NS.api('GET', NS.withPurpose(examPath + '/media'))]);
  st.me = who;
  if (st.me.role !== 'expert') { $('mark-form').classList.add('hidden'); $('verdict-save').classList.add('hidden'); }
  st.origin = Date.parse(media.from);
  st.duration = (Date.parse(media.to) - st.origin) / 1000;
  // The title waits for nothing and nothing waits for it but the end.
  const titled = showTitle();
  buildViews(media.streams || []);
  const firsts = (media.streams || []).filter((s) => s.first).map((s) => Date.parse(s.first));
  // Open where every stream has footage, so that each view shows a picture.
  st.t = firsts.length ? timeOf(Math.max(...firsts)) + 0.1 : 0;
  await Promise.all(st.views.map(loadVariant));
  await Promise.all(st.views.map(loadSide));
  await loadReview();
  await titled;
  st.loaded = true;
  setInterval(tick, 100);
  tick();
})().catch((e) => { $('error').textContent = e.message; });
