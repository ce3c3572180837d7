// NARK's reading of the audit trail: of an organisation (what its users did
// and what was done to it), an account or an object, newest first, a page
// at a time. Every reading is itself in the trail.
'use strict';
Object.assign(NS.dict.en, {
  'Чей журнал': 'Whose trail', 'Организация': 'Organisation', '— любая —': '— any —', 'Учётная запись (логин)': 'Account (login)',
  'Объект (экзамен, кандидат, поток)': 'Object (exam, candidate, stream)', 'Показать': 'Show', 'Записи, новые сверху': 'Entries, newest first',
  'Кто': 'Who', 'Действие': 'Action', 'Объект': 'Object', 'Адрес': 'Address', 'Цель': 'Purpose', 'Ещё': 'More',
  'Выберите организацию, учётную запись или объект.': 'Choose an organisation, an account or an object.', 'Записей нет.': 'No entries.',
  'совет': 'council', 'центр': 'center', 'площадка': 'site',
});
const $ = (id) => document.getElementById(id);
const st = window.audit = {rows: [], last: 0, query: ''};
const enc = encodeURIComponent;

function row(e) {
  return NS.el('tr', {'data-action': e.action, 'data-id': String(e.id)}, NS.el('td', {}, NS.fmtDate(Date.parse(e.at))), NS.el('td', {}, e.actor || '—'),
    NS.el('td', {}, e.action), NS.el('td', {}, e.object), NS.el('td', {}, e.remote_addr), NS.el('td', {}, e.purpose || ''));
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
