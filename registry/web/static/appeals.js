// The council's appeal desk: results awaiting the council's decision with
// their deadlines, appeals with their state and legal hold, opening an
// appeal, recording the commission's decision and closing it, and exporting
// a candidate's evidence bundle, which the registry then verifies.
'use strict';
Object.assign(NS.dict.en, {
  'удовлетворена': 'upheld', 'отклонена': 'rejected', 'Решение комиссии': "Commission's decision", '— исход —': '— outcome —',
  'удовлетворить': 'uphold', 'отклонить': 'reject', 'текст решения апелляционной комиссии': "the appeals commission's decision",
  'Записать решение': 'Record decision', 'Записать решение комиссии? Изменить его будет нельзя.': "Record the commission's decision? It cannot be changed.",
  'Проверка пакета…': 'Verifying the bundle…', 'Пакет проверен: подписи верны': 'Bundle verified: the signatures are valid',
  'сегментов': 'segments', 'сегмент': 'segment', 'ключ архива': "archive's key",
  'Пакет не прошёл проверку': 'The bundle did not verify', 'и ещё': 'and more', 'Проверка не выполнена': 'Verification failed',
  'Кандидат и экзамен': 'Candidate and exam', 'Доводы апелляции': 'Grounds of the appeal', 'Дата подачи': 'Filed on', 'Цель': 'Purpose',
  'Исход': 'Outcome', 'Текст решения': 'Text of the decision', 'записи без результата': 'evidence without a result',
});
const $ = (id) => document.getElementById(id);
const desk = window.desk = {names: {}, exams: [], examNames: {}};
// examLabel names an exam by its qualification, site and date.
const examLabel = (id) => desk.examNames[id] || id;
const stepNames = {council_submission: 'решение совета (14 дней)', nark_verification: 'проверка НАРК (7 дней)', evidence_overdue: 'записи без результата'};
const statusNames = {open: 'открыта', decided: 'решена', closed: 'закрыта'};
const outcomeNames = {upheld: 'удовлетворена', rejected: 'отклонена'};
const enc = encodeURIComponent;
// plural picks the Russian form for n (1 сегмент, 2 сегмента, 5 сегментов).
// In English: one or many.
const plural = (n, one, few, many) => {
  const d = n % 10, h = n % 100;
  if (NS.lang() !== 'ru') return NS.t(n === 1 ? one : many);
  return d === 1 && h !== 11 ? one : d >= 2 && d <= 4 && (h < 12 || h > 14) ? few : many;
};

async function loadTargets() {
  const from = new Date(Date.now() - 120 * 864e5).toISOString(), to = new Date(Date.now() + 30 * 864e5).toISOString();
  desk.exams = await NS.api('GET', '/api/v1/exams?from=' + enc(from) + '&to=' + enc(to)) || [];
  const n = await NS.names();
  for (const e of desk.exams) desk.examNames[e.id] = (n.qual[e.qualification] || e.qualification) + ' · ' + (n.site[e.site] || e.site) + ' · ' + NS.fmtDay(Date.parse(e.starts_at));
  const sel = $('open-target');
  sel.textContent = '';
  for (const e of desk.exams) {
    const cands = await NS.api('GET', '/api/v1/exams/' + enc(e.id) + '/candidates') || [];
    for (const c of cands) {
      const name = c.candidate.full_name || [c.candidate.last_name, c.candidate.first_name].join(' ');
      desk.names[e.id + '/' + c.candidate.id] = name;
      sel.append(NS.el('option', {value: e.id + '/' + c.candidate.id}, name + ' · ' + examLabel(e.id)));
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
    tbody.append(NS.el('tr', {class: d.overdue ? 'overdue-row' : '', 'data-exam': d.exam}, NS.el('td', {}, examLabel(d.exam)), NS.el('td', {}, NS.t(stepNames[d.kind] || d.kind)),
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
    if (a.status === 'decided') { // an appeal is closed only once its decision is recorded
      const close = NS.el('button', {type: 'button', class: 'btn small close'}, NS.t('Закрыть'));
      close.addEventListener('click', async () => {
        if (!navigator.webdriver && !confirm(NS.t('Закрыть апелляцию? Удержание записей будет снято.'))) return;
        try { await NS.api('POST', '/api/v1/appeals/' + enc(a.id) + '/close'); await loadAppeals(); } catch (e) { $('error').textContent = e.message; }
      });
      actions.append(' ', close);
    }
    const status = NS.t(statusNames[a.status] || a.status) + (a.outcome ? ' (' + NS.t(outcomeNames[a.outcome] || a.outcome) + ')' : '');
    const decided = a.decision ? NS.el('div', {class: 'muted decision-text'}, a.decision + (a.decided_at ? ' · ' + NS.fmtDate(Date.parse(a.decided_at)) : '')) : '';
    tbody.append(NS.el('tr', {'data-appeal': a.id, 'data-status': a.status, 'data-hold': String(a.legal_hold)}, NS.el('td', {}, examLabel(a.exam)),
      NS.el('td', {}, desk.names[a.exam + '/' + a.candidate] || a.candidate), NS.el('td', {}, a.filed_on), NS.el('td', {}, a.reason),
      NS.el('td', {class: 'status'}, NS.el('span', {class: 'state'}, status), decided), NS.el('td', {}, hold), actions));
    if (a.status === 'open') tbody.append(decisionRow(a));
  }
}

// decisionRow is the form under an open appeal that records the appeals
// commission's decision: its outcome and text.
function decisionRow(a) {
  const outcome = NS.el('select', {class: 'outcome', required: '', 'aria-label': NS.t('Исход')}, NS.el('option', {value: ''}, NS.t('— исход —')),
    NS.el('option', {value: 'upheld'}, NS.t('удовлетворить')), NS.el('option', {value: 'rejected'}, NS.t('отклонить')));
  const text = NS.el('input', {type: 'text', class: 'decision', required: '', placeholder: NS.t('текст решения апелляционной комиссии'), 'aria-label': NS.t('Текст решения')});
  const submit = NS.el('button', {type: 'submit', class: 'btn small decide'}, NS.t('Записать решение'));
  const err = NS.el('span', {class: 'error decide-error'});
  const form = NS.el('form', {class: 'row decide'}, NS.el('span', {class: 'muted'}, NS.t('Решение комиссии') + ':'), outcome, text, submit, err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (!navigator.webdriver && !confirm(NS.t('Записать решение комиссии? Изменить его будет нельзя.'))) return;
    submit.disabled = true;
    try {
      await NS.api('POST', '/api/v1/appeals/' + enc(a.id) + '/decision', {outcome: outcome.value, decision: text.value.trim()});
      await loadAppeals();
    } catch (e) { err.textContent = e.message; submit.disabled = false; }
  });
  return NS.el('tr', {class: 'decide-row', 'data-decide': a.id}, NS.el('td', {colspan: '7'}, form));
}

// exportBundle asks the purpose, then downloads the evidence bundle with
// the session token, saves it as a file and has the registry verify it.
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
  delete st.dataset.done;
  $('verify-state').className = 'notice hidden';
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
      NS.el('br', {}), NS.el('span', {}, NS.t('Проверка: nokstream verify') + ' ' + name + ' --pubkey '),
      NS.el('a', {href: '/api/v1/keys/seal?format=pem', download: 'seal.pub'}, 'seal.pub'));
    st.dataset.done = name;
    await verifyBundle(blob, why);
  } catch (e) { st.textContent = NS.t('Ошибка выгрузки') + ': ' + e.message; }
});

// verifyBundle sends the downloaded bundle back to the registry, which
// checks it with the archive's key as `nokstream verify --pubkey` does, and
// shows the result: data-valid is "true", "false" or "error".
async function verifyBundle(blob, why) {
  const vs = $('verify-state');
  vs.className = 'notice';
  vs.dataset.valid = '';
  vs.textContent = NS.t('Проверка пакета…');
  try {
    const resp = await fetch('/api/v1/evidence/verify?purpose=' + enc(why), {method: 'POST', body: blob,
      headers: {Authorization: 'Bearer ' + NS.token(), 'Content-Type': 'application/x-tar'}});
    const rep = await resp.json().catch(() => null);
    if (!resp.ok || !rep) throw new Error((rep && rep.error) || resp.statusText || resp.status);
    if (rep.valid) {
      vs.classList.add('ok');
      vs.textContent = NS.t('Пакет проверен: подписи верны') + ', ' + rep.objects + ' ' + plural(rep.objects, 'сегмент', 'сегмента', 'сегментов') +
        ' (' + (rep.bytes / 1048576).toFixed(1) + ' MiB), ' + NS.t('ключ архива') + ' ' + rep.key_id;
    } else {
      vs.classList.add('bad');
      vs.textContent = NS.t('Пакет не прошёл проверку') + ': ' + rep.reason +
        (rep.problems_total > 1 ? ' (' + NS.t('и ещё') + ' ' + (rep.problems_total - 1) + ')' : '');
    }
    vs.dataset.valid = String(rep.valid);
  } catch (e) {
    vs.classList.add('bad');
    vs.textContent = NS.t('Проверка не выполнена') + ': ' + e.message;
    vs.dataset.valid = 'error';
  }
}

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
  await NS.start();
  NS.zoneNote($('zone'));
  $('open-filed').value = new Date().toISOString().slice(0, 10);
  await loadTargets();
  await Promise.all([loadDeadlines(), loadAppeals()]);
  desk.loaded = true;
  document.body.dataset.loaded = 'true';
  document.addEventListener('langchange', () => { loadDeadlines(); loadAppeals(); });
})().catch((e) => { $('error').textContent = e.message; });
