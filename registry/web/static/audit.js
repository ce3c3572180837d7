// NARK's reading of the audit trail: of an organisation (what its users did
// and what was done to it), an account or an object, newest first, a page
// at a time. Every reading is itself in the trail. NARK also suspends and
// reactivates accounts here.
'use strict';
Object.assign(NS.dict.en, {
  'Чей журнал': 'Whose trail', 'Организация': 'Organisation', '— любая —': '— any —', 'Учётная запись (логин)': 'Account (login)',
  'Объект (экзамен, кандидат, поток)': 'Object (exam, candidate, stream)', 'Показать': 'Show', 'Записи, новые сверху': 'Entries, newest first',
  'Кто': 'Who', 'Действие': 'Action', 'Объект': 'Object', 'Адрес': 'Address', 'Цель': 'Purpose', 'Ещё': 'More',
  'Выберите организацию, учётную запись или объект.': 'Choose an organisation, an account or an object.', 'Записей нет.': 'No entries.',
  'совет': 'council', 'центр': 'center', 'площадка': 'site',
  'Учётная запись: приостановить или восстановить': 'Account: suspend or reactivate', 'Логин': 'Login', 'Причина приостановки': 'Reason for the suspension',
  'Приостановить': 'Suspend', 'Восстановить': 'Reactivate', 'приостановлена': 'suspended', 'действует': 'active', 'Учётная запись': 'Account',
  'Укажите причину приостановки': 'Give the reason for the suspension',
  'допуск центра советом': "a council's authorisation of the center", 'отзыв допуска центра': "a council's withdrawal of the center's authorisation",
  'регистрация центра': 'center registered', 'регистрация площадки': 'site registered',
});
const $ = (id) => document.getElementById(id);
const st = window.audit = {rows: [], last: 0, query: ''};
const enc = encodeURIComponent;

// What each action of the log is, in words; the code stays beside it.
const actions = {
  'auth.login': 'вход', 'auth.password_changed': 'смена пароля', 'auth.logout': 'выход', 'link.create': 'подписанная ссылка',
  'candidate.create': 'регистрация кандидата', 'candidate.update': 'изменение данных кандидата', 'document.upload': 'загрузка документа',
  'document.get': 'просмотр документа', 'exam.create': 'создание экзамена', 'exam.candidate_add': 'кандидат на рабочем месте',
  'exam.expert_appoint': 'назначение эксперта', 'exam.admission': 'допуск', 'exam.password_issue': 'выдача пароля экзамена',
  'exam.decision': 'решение совета', 'exam.verification': 'проверка НАРК', 'exam.consent': 'согласие кандидата',
  'center.update': 'изменение реквизитов центра', 'center.qualifications_set': 'допуск центра к квалификациям',
  'center.authorise': 'допуск центра советом', 'center.withdraw': 'отзыв допуска центра', 'center.create': 'регистрация центра', 'site.create': 'регистрация площадки',
  'site.update': 'изменение реквизитов площадки',
  'council.commission_set': 'апелляционная комиссия', 'council.retention_set': 'сроки хранения', 'qualification.tool_add': 'оценочные средства',
  'result.record': 'карточка результата', 'certificate.extend': 'продление свидетельства', 'certificate.revoke': 'отзыв свидетельства',
  'protocol.upload': 'протокол комиссии', 'protocol.approval': 'одобрение протокола', 'appeal.open': 'апелляция подана', 'appeal.decide': 'решение по апелляции',
  'appeal.close': 'апелляция закрыта', 'evidence.list': 'открыты записи', 'evidence.export': 'выгрузка доказательств', 'evidence.verify': 'проверка пакета',
  'evidence.dispose': 'удаление записей без результата', 'playlist.get': 'просмотр записи', 'master.get': 'просмотр записи', 'media.get': 'загрузка сегмента',
  'segments.list': 'список сегментов', 'observations.list': 'наблюдения', 'thumbnails.get': 'миниатюры', 'review.mark': 'отметка эксперта',
  'review.verdict': 'заключение эксперта', 'audit.read': 'чтение журнала', 'user.add': 'учётная запись создана',
  'user.suspension': 'приостановка или восстановление учётной записи', 'org.suspension': 'приостановка или восстановление организации',
};

function row(e) {
  return NS.el('tr', {'data-action': e.action, 'data-id': String(e.id)}, NS.el('td', {}, NS.fmtDate(Date.parse(e.at))), NS.el('td', {}, e.actor || '—'),
    NS.el('td', {}, actions[e.action] ? NS.t(actions[e.action]) : e.action, actions[e.action] ? NS.el('div', {class: 'muted'}, e.action) : ''),
    NS.el('td', {}, e.object), NS.el('td', {}, e.remote_addr), NS.el('td', {}, e.purpose || ''));
}

async function show(more) {
  const q = new URLSearchParams();
  if ($('f-org').value) q.set('org', $('f-org').value);
  if ($('f-user').value.trim()) q.set('user', $('f-user').value.trim());
  if ($('f-object').value.trim()) q.set('object', $('f-object').value.trim());
  const tbody = document.querySelector('#trail tbody');
  if (!q.toString()) { tbody.textContent = ''; $('error').textContent = NS.t('Выберите организацию, учётную запись или объект.'); return; }
  $('error').textContent = '';
  q.set('limit', '50');
  if (more && st.last) q.set('before', String(st.last)); else tbody.textContent = '';
  // The query goes in a request the page makes, never in the page's address.
  const list = await NS.api('GET', '/api/v1/audit?' + q.toString()) || [];
  for (const e of list) tbody.append(row(e));
  if (!tbody.children.length) tbody.append(NS.el('tr', {}, NS.el('td', {colspan: '6', class: 'muted'}, NS.t('Записей нет.'))));
  st.last = list.length ? list[list.length - 1].id : st.last;
  $('more').classList.toggle('hidden', list.length < 50);
  document.body.dataset.shown = String(tbody.querySelectorAll('tr[data-id]').length);
}

// NARK suspends an account (its sessions and signed links end at once) or
// reactivates it; then the page shows what was done to the account.
async function suspension(suspended) {
  const login = $('a-login').value.trim(), reason = $('a-reason').value.trim();
  if (suspended && !reason) { $('a-reason').focus(); throw new Error(NS.t('Укажите причину приостановки')); }
  const r = await NS.api('POST', '/api/v1/users/' + enc(login) + '/suspension', suspended ? {suspended, reason} : {suspended});
  $('a-state').textContent = NS.t('Учётная запись') + ' ' + r.login + ': ' + NS.t(r.suspended ? 'приостановлена' : 'действует');
  $('a-state').dataset.suspended = String(r.suspended);
  $('f-org').value = ''; $('f-user').value = ''; $('f-object').value = login;
  await show(false);
}
$('account-form').addEventListener('submit', (ev) => { ev.preventDefault(); NS.busy($('a-suspend'), $('a-error'), () => suspension(true)); });
$('a-reactivate').addEventListener('click', () => NS.busy($('a-reactivate'), $('a-error'), () => suspension(false)));

$('filter-form').addEventListener('submit', (ev) => { ev.preventDefault(); show(false).catch((e) => { $('error').textContent = e.message; }); });
$('more').addEventListener('click', () => show(true).catch((e) => { $('error').textContent = e.message; }));

(async () => {
  await NS.start();
  NS.zoneNote($('zone'));
  $('more').classList.add('hidden');
  const get = (p) => NS.api('GET', p).catch(() => []);
  const [councils, centers, sites] = await Promise.all([get('/api/v1/councils'), get('/api/v1/centers'), get('/api/v1/sites')]);
  for (const [kind, list] of [['совет', councils], ['центр', centers], ['площадка', sites]]) {
    for (const o of list || []) $('f-org').append(NS.el('option', {value: o.id}, NS.t(kind) + ': ' + (o.name || o.id)));
  }
  // orgs.html links here with the organisation chosen (its id only).
  const pre = new URLSearchParams(location.search).get('org');
  if (pre) { $('f-org').value = pre; await show(false); }
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
