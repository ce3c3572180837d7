// The council's appeal desk: results awaiting the council's decision with
// their deadlines, appeals with their state and legal hold, opening and
// closing an appeal, and exporting a candidate's evidence bundle.
'use strict';
if (!NS.token()) location.href = '/ui/';
NS.langButton(document.getElementById('lang'));
document.getElementById('logout').addEventListener('click', NS.logout);
const $ = (id) => document.getElementById(id);
const desk = window.desk = {names: {}, exams: []};
const stepNames = {council_submission: 'решение совета (14 дней)', nark_verification: 'проверка НАРК (7 дней)'};
const statusNames = {open: 'открыта', decided: 'решена', closed: 'закрыта'};
const enc = encodeURIComponent;

async function loadTargets() {
  const from = new Date(Date.now() - 120 * 864e5).toISOString(), to = new Date(Date.now() + 30 * 864e5).toISOString();
  desk.exams = await NS.api('GET', '/api/v1/exams?from=' + enc(from) + '&to=' + enc(to)) || [];
  const sel = $('open-target');
  sel.textContent = '';
  for (const e of desk.exams) {
    const cands = await NS.api('GET', '/api/v1/exams/' + enc(e.id) + '/candidates') || [];
    for (const c of cands) {
      const name = c.candidate.full_name || [c.candidate.last_name, c.candidate.first_name].join(' ');
      desk.names[e.id + '/' + c.candidate.id] = name;
      sel.append(NS.el('option', {value: e.id + '/' + c.candidate.id}, e.id + ' · ' + name));
    }
  }
}

async function loadDeadlines() {
  const list = await NS.api('GET', '/api/v1/deadlines') || [];
  const tbody = document.querySelector('#deadlines tbody');
  tbody.textContent = '';
  $('deadlines-empty').textContent = list.length ? '' : NS.t('Нет результатов, ожидающих решения');
  for (const d of list) {
    const state = d.overdue ? NS.el('span', {class: 'st-bad overdue'}, NS.t('просрочено') + ' ' + d.overdue_days + ' ' + NS.t('дн.'))
      : NS.el('span', {class: 'st-wait'}, NS.t('осталось') + ' ' + Math.max(0, Math.ceil((Date.parse(d.due) - Date.now()) / 864e5)) + ' ' + NS.t('дн.'));
    tbody.append(NS.el('tr', {class: d.overdue ? 'overdue-row' : '', 'data-exam': d.exam}, NS.el('td', {}, d.exam), NS.el('td', {}, NS.t(stepNames[d.kind] || d.kind)),
      NS.el('td', {}, NS.fmtDate(Date.parse(d.since))), NS.el('td', {}, NS.fmtDate(Date.parse(d.due))), NS.el('td', {}, state)));
  }
}

async function loadAppeals() {
  const list = await NS.api('GET', '/api/v1/appeals') || [];
  const tbody = document.querySelector('#appeals tbody');
  tbody.textContent = '';
  $('appeals-empty').textContent = list.length ? '' : NS.t('Апелляций нет');
  for (const a of list) {
    const hold = a.legal_hold ? NS.el('span', {class: 'hold st-bad'}, NS.t('удерживаются'))
      : NS.el('span', {class: 'hold muted'}, NS.t('снято') + (a.closed_at ? ' ' + NS.fmtDate(Date.parse(a.closed_at)) : ''));
    const actions = NS.el('td', {class: 'actions'});
    const exp = NS.el('button', {type: 'button', class: 'btn small light export'}, NS.t('Выгрузить доказательства'));
    exp.addEventListener('click', () => exportBundle(a.exam, a.candidate));
    actions.append(exp);
    if (a.status !== 'closed') {
      const close = NS.el('button', {type: 'button', class: 'btn small close'}, NS.t('Закрыть'));
      close.addEventListener('click', async () => {
        if (!navigator.webdriver && !confirm(NS.t('Закрыть апелляцию? Удержание записей будет снято.'))) return;
        try { await NS.api('POST', '/api/v1/appeals/' + enc(a.id) + '/close'); await loadAppeals(); } catch (e) { $('error').textContent = e.message; }
      });
      actions.append(' ', close);
    }
    const status = NS.t(statusNames[a.status] || a.status) + (a.outcome ? ' (' + a.outcome + ')' : '');
    tbody.append(NS.el('tr', {'data-appeal': a.id, 'data-status': a.status, 'data-hold': String(a.legal_hold)}, NS.el('td', {}, a.exam),
      NS.el('td', {}, desk.names[a.exam + '/' + a.candidate] || a.candidate), NS.el('td', {}, a.filed_on), NS.el('td', {}, a.reason),
      NS.el('td', {class: 'status'}, status), NS.el('td', {}, hold), actions));
  }
}

// exportBundle asks the purpose, then downloads the evidence bundle with
// the session token and saves it as a file.
function exportBundle(exam, cand) {
  const dlg = $('purpose-dialog');
  desk.pending = {exam, cand};
  $('purpose').value = '';
  dlg.showModal();
}
$('purpose-cancel').addEventListener('click', () => $('purpose-dialog').close());
$('purpose-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const why = $('purpose').value.trim();
  if (!why || !desk.pending) return;
  $('purpose-dialog').close();
  const {exam, cand} = desk.pending;
  const st = $('export-state');
  st.classList.remove('hidden');
  st.textContent = NS.t('Выгрузка…');
  try {
    const resp = await fetch('/api/v1/exams/' + enc(exam) + '/candidates/' + enc(cand) + '/evidence?purpose=' + enc(why),
      {headers: {Authorization: 'Bearer ' + NS.token()}});
    if (!resp.ok) { const t = await resp.text(); let m = t; try { m = JSON.parse(t).error; } catch (e) { /* text */ } throw new Error(m || resp.status); }
    const blob = await resp.blob();
    const name = 'evidence-' + exam + '-' + cand + '.tar';
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()))).map((b) => b.toString(16).padStart(2, '0')).join('');
    const a = NS.el('a', {href: URL.createObjectURL(blob), download: name});
    document.body.append(a); a.click(); a.remove();
    st.textContent = '';
    st.append(NS.el('b', {}, NS.t('Выгружено') + ': ' + name), ' · ' + (blob.size / 1048576).toFixed(1) + ' MiB · SHA-256 ' + digest,
      NS.el('br', {}), NS.el('span', {}, NS.t('Проверка: nokstream verify') + ' ' + name));
    st.dataset.done = name;
  } catch (e) { st.textContent = NS.t('Ошибка выгрузки') + ': ' + e.message; }
});

$('open-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('open-error').textContent = '';
  const [exam, cand] = $('open-target').value.split('/');
  const body = {reason: $('open-reason').value.trim()};
  if ($('open-filed').value) body.filed_on = $('open-filed').value;
  try {
    await NS.api('POST', '/api/v1/exams/' + enc(exam) + '/candidates/' + enc(cand) + '/appeals', body);
    $('open-reason').value = '';
    await loadAppeals();
  } catch (e) { $('open-error').textContent = e.message; }
});

(async () => {
  const me = await NS.api('GET', '/api/v1/auth/me');
  $('who').textContent = me.login + (me.org ? ' · ' + me.org : '');
  $('open-filed').value = new Date().toISOString().slice(0, 10);
  await loadTargets();
  await Promise.all([loadDeadlines(), loadAppeals()]);
  desk.loaded = true;
})().catch((e) => { $('error').textContent = e.message; });
