// Result cards through the register's procedure, one page for the three
// who act on them: the center fills each admitted candidate's card and
// submits them to the council (and resubmits what comes back); the council
// approves with its protocol, returns or rejects with a reason; NARK
// verifies what the council approved, overdue first, and enters it in the
// register.
'use strict';
Object.assign(NS.dict.en, {
  'Результаты экзаменов': 'Exam results', 'Решения совета': "Council's decisions", 'Проверка НАРК': "NARK's verification", 'Карточки': 'Cards',
  'Срок': 'Due', 'Карточки результатов': 'Result cards', 'Допуск': 'Admission', 'Результат': 'Result', 'Отправить карточки в совет': 'Submit the cards to the council',
  'Решение': 'Decision', 'утвердить': 'approve', 'вернуть на доработку': 'return for rework', 'отклонить': 'reject', 'Номер протокола совета': "Council's protocol number",
  'Дата протокола': 'Protocol date', 'Скан протокола (PDF, JPEG, PNG, TIFF)': 'Protocol scan (PDF, JPEG, PNG, TIFF)', 'или ссылка на протокол': 'or a link to the protocol',
  'Причина (для возврата и отказа)': 'Reason (to return or reject)', 'Причина опоздания (после 14 дней)': 'Why late (after 14 days)', 'Записать решение': 'Record the decision',
  'Итог проверки': 'Outcome', 'проверено': 'verified', 'не проверено': 'not verified', 'Причина (если не проверено)': 'Reason (if not verified)',
  'Причина опоздания (после 7 дней)': 'Why late (after 7 days)', 'Записать проверку': 'Record the verification', 'Внести проверенные в реестр': 'Enter the verified in the register',
  'История решений': 'Decisions so far', 'черновик': 'draft', 'отправлена в совет': 'submitted to the council', 'утверждена советом': 'approved by the council',
  'отклонена советом': 'rejected by the council', 'возвращена на доработку': 'returned for rework', 'проверена НАРК': 'verified by NARK',
  'не прошла проверку НАРК': 'not verified by NARK', 'в реестре': 'in the register', 'нет карточки': 'no card', 'свидетельство': 'certificate', 'заключение': 'conclusion',
  'Вид': 'Kind', 'Номер свидетельства': 'Certificate number', 'Дата выдачи': 'Issued on', 'Текст заключения': 'Text of the conclusion', 'Сохранить карточку': 'Save the card',
  'действует до': 'valid until', 'Открыть': 'Open', 'Протокол комиссии': "Commission's protocol", 'не загружен': 'not uploaded', 'одобрен': 'approved by',
  'не одобрен': 'not approved by', 'Эксперты': 'Experts', 'Карточки отправлены': 'Cards submitted', 'Решение записано': 'Decision recorded', 'Проверка записана': 'Verification recorded',
  'Внесено в реестр': 'Entered in the register', 'просрочено': 'overdue', 'осталось': 'left', 'дн.': 'd', 'утверждено': 'approved', 'возвращено': 'returned', 'отклонено': 'rejected',
  'Экзаменов, прошедших за 120 дней, нет.': 'No exams over in the last 120 days.', 'Решений ещё нет.': 'No decisions yet.',
  'Центр заполняет карточку каждого допущенного кандидата и отправляет их в совет; возвращённые карточки исправляет и отправляет снова.':
    'The center fills the card of every admitted candidate and submits them to the council; it corrects returned cards and submits them again.',
  'Совет решает по отправленным карточкам в течение 14 дней после экзамена: утверждает с протоколом совета, возвращает или отклоняет с причиной.':
    "The council decides on submitted cards within 14 days of the exam: approves with the council's protocol, returns or rejects with a reason.",
  'НАРК проверяет утверждённые советом карточки в течение 7 дней; просроченные — сверху.': 'NARK verifies the cards the council approved within 7 days; overdue first.',
});
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const st = window.results = {me: null, names: null, exams: [], deadlines: {}, selected: null, cards: []};
const cardStates = {draft: 'черновик', submitted: 'отправлена в совет', approved: 'утверждена советом', rejected: 'отклонена советом',
  returned: 'возвращена на доработку', verified: 'проверена НАРК', not_verified: 'не прошла проверку НАРК', registered: 'в реестре'};
const decisionNames = {approved: 'утверждено', returned: 'возвращено', rejected: 'отклонено'};
const stepOf = {council: 'council_submission', nark: 'nark_verification', center: 'council_submission'};
const today = () => new Date(Date.now() - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 10);

function dueCell(d) {
  if (!d) return '';
  if (d.overdue) return NS.el('span', {class: 'st-bad'}, NS.t('просрочено') + ' ' + d.overdue_days + ' ' + NS.t('дн.'));
  return NS.el('span', {class: 'st-wait'}, NS.t('осталось') + ' ' + Math.max(0, Math.ceil((Date.parse(d.due) - Date.now()) / 864e5)) + ' ' + NS.t('дн.'));
}

async function loadExams() {
  const from = new Date(Date.now() - 120 * 864e5).toISOString(), to = new Date().toISOString();
  const [exams, deadlines] = await Promise.all([NS.api('GET', '/api/v1/exams?from=' + enc(from) + '&to=' + enc(to)),
    NS.api('GET', '/api/v1/deadlines').catch(() => [])]);
  st.deadlines = {};
  for (const d of deadlines || []) if (d.kind === stepOf[st.me.role]) st.deadlines[d.exam] = d;
  // What awaits this role first, overdue before due, the soonest due first;
  // then the rest, the latest exam first.
  const rank = (e) => { const d = st.deadlines[e.id]; return d ? (d.overdue ? 0 : 1) : 2; };
  st.exams = (exams || []).filter((e) => Date.parse(e.ends_at) <= Date.now()).sort((a, b) => (rank(a) - rank(b)) ||
    (rank(a) < 2 ? Date.parse(st.deadlines[a.id].due) - Date.parse(st.deadlines[b.id].due) : Date.parse(b.starts_at) - Date.parse(a.starts_at)));
  const n = st.names;
  NS.paginate(document.querySelector('#exams tbody'), st.exams, (e) => {
    const open = NS.el('button', {type: 'button', class: 'btn small light open'}, NS.t('Открыть'));
    open.addEventListener('click', () => select(e.id).catch((x) => { $('error').textContent = x.message; }));
    const summary = NS.el('td', {class: 'card-summary'}, '…');
    NS.api('GET', '/api/v1/exams/' + enc(e.id) + '/cards').then((r) => {
      const count = {};
      for (const c of r.cards || []) count[c.state] = (count[c.state] || 0) + 1;
      summary.textContent = Object.entries(count).map(([k, v]) => NS.tr(cardStates, k) + ': ' + v).join(', ') || NS.t('нет карточки');
    }).catch(() => { summary.textContent = ''; });
    const d = st.deadlines[e.id];
    return NS.el('tr', {'data-exam': e.id, class: (st.selected === e.id ? 'selected ' : '') + (d && d.overdue ? 'overdue-row' : '')},
      NS.el('td', {}, NS.qualName(n, e.qualification)), NS.el('td', {}, n.site[e.site] || e.site), NS.el('td', {}, NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site])),
      summary, NS.el('td', {}, dueCell(d)), NS.el('td', {}, open));
  }, {size: 15, empty: NS.t('Экзаменов, прошедших за 120 дней, нет.')});
}

async function select(id) {
  st.selected = id;
  await loadExams(); // the deadlines as they are now
  const [e, members, cards, decisions, protocol] = await Promise.all([NS.api('GET', '/api/v1/exams/' + enc(id)),
    NS.api('GET', '/api/v1/exams/' + enc(id) + '/candidates'), NS.api('GET', '/api/v1/exams/' + enc(id) + '/cards'),
    NS.api('GET', '/api/v1/exams/' + enc(id) + '/decisions').catch(() => null), NS.api('GET', '/api/v1/exams/' + enc(id) + '/protocol').catch(() => null)]);
  const n = st.names;
  $('exam').classList.remove('hidden');
  $('exam').dataset.exam = id;
  $('exam-title').textContent = NS.qualName(n, e.qualification) + ' · ' + (n.site[e.site] || e.site) + ' · ' + NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site]);
  const facts = $('exam-facts');
  facts.textContent = '';
  const proto = protocol ? '№ ' + protocol.number + ' ' + NS.t('от') + ' ' + NS.fmtISO(protocol.signed_on) + ' · ' + (protocol.approvals || []).map((a) =>
    NS.t(a.approved ? 'одобрен' : 'не одобрен') + ' ' + a.expert).join(', ') : NS.t('не загружен');
  facts.append(NS.el('dt', {}, NS.t('Протокол комиссии')), NS.el('dd', {}, proto),
    NS.el('dt', {}, NS.t('Эксперты')), NS.el('dd', {}, e.experts.map((x) => x.login).join(', ') || '—'),
    NS.el('dt', {}, NS.t('Срок')), NS.el('dd', {}, dueCell(st.deadlines[id]) || '—'));
  const byCand = {};
  for (const c of cards.cards || []) byCand[c.candidate] = c;
  st.cards = cards.cards || [];
  NS.paginate(document.querySelector('#cards tbody'), members || [], (m) => cardRows(m, byCand[m.candidate.id]), {size: 30});
  const states = new Set(st.cards.map((c) => c.state));
  const role = st.me.role;
  $('center-actions').classList.toggle('hidden', role !== 'center' || !(states.has('draft') || states.has('returned')));
  $('decision-form').classList.toggle('hidden', role !== 'council' || !(states.has('submitted') || states.has('not_verified')));
  $('verify-form').classList.toggle('hidden', role !== 'nark' || !(states.has('approved') || states.has('verified')));
  $('v-save').classList.toggle('hidden', !states.has('approved'));
  $('v-register').classList.toggle('hidden', !states.has('verified'));
  const hist = $('history');
  hist.textContent = '';
  for (const d of (decisions && decisions.decisions) || []) {
    hist.append(NS.el('li', {'data-decision': d.decision}, NS.fmtDate(Date.parse(d.decided_at)) + ' · ' + NS.t('Решение совета') + ': ' + NS.tr(decisionNames, d.decision) +
      (d.comment ? ' — ' + d.comment : '') + (d.protocol && d.protocol.number ? ' · № ' + d.protocol.number + ' ' + NS.t('от') + ' ' + NS.fmtISO(d.protocol.date) : '')));
  }
  for (const v of (decisions && decisions.verifications) || []) {
    hist.append(NS.el('li', {'data-verified': String(v.verified)}, NS.fmtDate(Date.parse(v.verified_at)) + ' · ' + NS.t('Проверка НАРК') + ': ' +
      NS.t(v.verified ? 'проверено' : 'не проверено') + (v.comment ? ' — ' + v.comment : '')));
  }
  if (!hist.children.length) hist.append(NS.el('li', {class: 'muted'}, NS.t('Решений ещё нет.')));
}

// cardRows shows a candidate's card, and for the center a form to fill it
// while it is a draft or returned.
function cardRows(m, card) {
  const id = m.candidate.id;
  let result = NS.t('нет карточки');
  if (card) {
    result = card.kind === 'certificate' ? NS.t('свидетельство') + ' № ' + card.certificate_number + ', ' + NS.fmtISO(card.issued_on) +
      (card.valid_until ? ', ' + NS.t('действует до') + ' ' + NS.fmtISO(card.valid_until) : '') : NS.t('заключение') + ': ' + (card.conclusion || '');
  }
  const state = card ? NS.el('span', {class: 'state-tag ' + card.state}, NS.tr(cardStates, card.state)) : '';
  const reason = card && card.state_reason ? NS.el('div', {class: 'muted state-reason'}, card.state_reason) : '';
  const editable = st.me.role === 'center' && m.admission === 'admitted' && (!card || card.state === 'draft' || card.state === 'returned');
  const row = NS.el('tr', {'data-candidate': id, 'data-state': card ? card.state : ''}, NS.el('td', {}, NS.candName(m.candidate)),
    NS.el('td', {}, NS.el('span', {class: 'state-tag ' + m.admission}, NS.tr(NS.admissionNames, m.admission))), NS.el('td', {}, result), NS.el('td', {}, state, reason),
    NS.el('td', {}));
  if (!editable) return row;
  const p = 'card-' + id + '-';
  const [lk, kind] = NS.field(p + 'kind', 'Вид', {tag: 'select', class: 'card-kind', options: [['certificate', NS.t('свидетельство')], ['conclusion', NS.t('заключение')]]});
  const [ln, number] = NS.field(p + 'number', 'Номер свидетельства', {class: 'card-number', autocomplete: 'off'});
  const [ld, issued] = NS.field(p + 'issued', 'Дата выдачи', {type: 'date', class: 'card-issued', value: (card && card.issued_on) || today()});
  const [lc, concl] = NS.field(p + 'conclusion', 'Текст заключения', {class: 'card-conclusion', autocomplete: 'off'});
  if (card) { kind.value = card.kind; number.value = card.certificate_number || ''; concl.value = card.conclusion || ''; }
  const save = NS.el('button', {type: 'submit', class: 'btn small card-save'}, NS.t('Сохранить карточку'));
  const err = NS.el('span', {class: 'error'});
  const form = NS.el('form', {class: 'grid-form card-form'}, NS.el('div', {}, lk, kind), NS.el('div', {}, ln, number), NS.el('div', {}, ld, issued),
    NS.el('div', {}, lc, concl), NS.el('div', {}, save, ' ', err));
  const toggle = () => { number.disabled = kind.value !== 'certificate'; concl.disabled = kind.value !== 'conclusion'; };
  kind.addEventListener('change', toggle);
  toggle();
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    NS.busy(save, err, async () => {
      const body = {kind: kind.value, issued_on: issued.value};
      if (kind.value === 'certificate') body.certificate_number = number.value.trim(); else body.conclusion = concl.value.trim();
      await NS.api('PUT', '/api/v1/exams/' + enc(st.selected) + '/candidates/' + enc(id) + '/result', body);
      await select(st.selected);
    });
  });
  return [row, NS.el('tr', {class: 'decide-row', 'data-card-form': id}, NS.el('td', {colspan: '5'}, form))];
}

$('submit-cards').addEventListener('click', () => NS.busy($('submit-cards'), $('cards-error'), async () => {
  await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/submission');
  await select(st.selected);
  $('submit-state').textContent = NS.t('Карточки отправлены');
}));

$('decision-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('d-save'), $('d-error'), async () => {
    const body = {decision: $('d-decision').value};
    if ($('d-comment').value.trim()) body.comment = $('d-comment').value.trim();
    if ($('d-late').value.trim()) body.late_reason = $('d-late').value.trim();
    if (body.decision === 'approved') {
      body.protocol = {number: $('d-number').value.trim(), date: $('d-date').value};
      const f = $('d-scan').files[0];
      if (f) {
        // The scan goes first; the decision names it. Its file name is not
        // sent: it may name people.
        const resp = await fetch('/api/v1/exams/' + enc(st.selected) + '/council-protocol?filename=' +
          enc('protocol' + ((/\.[a-z0-9]{1,5}$/i.exec(f.name) || [''])[0].toLowerCase())), {method: 'POST', body: f,
          headers: {Authorization: 'Bearer ' + NS.token(), 'Content-Type': f.type || 'application/octet-stream'}});
        const doc = await resp.json().catch(() => ({}));
        if (!resp.ok) throw new Error(doc.error || resp.statusText);
        body.protocol.document = doc.id;
      }
      if ($('d-link').value.trim()) body.protocol.link = $('d-link').value.trim();
    }
    await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/decision', body);
    $('d-scan').value = '';
    await select(st.selected);
    $('d-state').textContent = NS.t('Решение записано');
  });
});

$('verify-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('v-save'), $('v-error'), async () => {
    const body = {verified: $('v-verified').value === 'true'};
    if ($('v-comment').value.trim()) body.comment = $('v-comment').value.trim();
    if ($('v-late').value.trim()) body.late_reason = $('v-late').value.trim();
    await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/verification', body);
    await select(st.selected);
    $('v-state').textContent = NS.t('Проверка записана');
  });
});
$('v-register').addEventListener('click', () => NS.busy($('v-register'), $('v-error'), async () => {
  await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/registration', {});
  await select(st.selected);
  $('v-state').textContent = NS.t('Внесено в реестр');
}));

(async () => {
  st.me = await NS.start();
  const titles = {council: 'Решения совета', nark: 'Проверка НАРК'};
  const help = {center: 'Центр заполняет карточку каждого допущенного кандидата и отправляет их в совет; возвращённые карточки исправляет и отправляет снова.',
    council: 'Совет решает по отправленным карточкам в течение 14 дней после экзамена: утверждает с протоколом совета, возвращает или отклоняет с причиной.',
    nark: 'НАРК проверяет утверждённые советом карточки в течение 7 дней; просроченные — сверху.'};
  if (titles[st.me.role]) { $('page-title').dataset.ru = titles[st.me.role]; $('page-title').textContent = NS.t(titles[st.me.role]); }
  $('page-help').textContent = NS.t(help[st.me.role] || '');
  NS.zoneNote($('zone'));
  $('d-date').value = today();
  st.names = await NS.names();
  await loadExams();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
