// The council's retention settings, for the council and per qualification,
// with the legal floors shown beside each and refused below them.
'use strict';
Object.assign(NS.dict.en, {
  'Хранение записей': 'Retention of recordings', 'Законные минимумы': 'Legal floors', 'Сроки совета': "The council's periods", 'Для': 'For',
  'Срок подачи апелляции, дней': 'Appeal window, days', 'Хранение без результата, дней': 'Kept without a result, days', 'Записи вне экзаменов, дней': 'Footage of no exam, days',
  'Действующие сроки': 'Periods in force', 'Апелляция, дн.': 'Appeal, d', 'Без результата, дн.': 'No result, d', 'Вне экзаменов, дн.': 'No exam, d',
  'всех квалификаций совета': "all the council's qualifications", 'не меньше': 'at least', 'дней': 'days', 'Сроки сохранены': 'Periods saved',
  'срок подачи апелляции': 'appeal window', 'запас после апелляции': 'margin after the appeal window', 'хранение без результата': 'kept without a result',
  'записи вне экзаменов': 'footage of no exam', 'ниже законного минимума': 'below the legal floor',
  'Записи экзамена, по которому выдано свидетельство, хранятся весь срок его действия. Здесь задаются сроки для остальных случаев; ниже законного минимума срок не принимается.':
    "Recordings of an exam that issued a certificate are kept while it is valid. Here are the periods for the other cases; none below the legal floor is accepted.",
});
const $ = (id) => document.getElementById(id);
const st = window.retention = {me: null, floors: null, settings: null};
const enc = encodeURIComponent;
const inputs = {appeal_window_days: 'r-appeal', provisional_days: 'r-provisional', unlinked_days: 'r-unlinked'};

function showFloors() {
  const f = st.floors;
  const dl = $('floors');
  dl.textContent = '';
  for (const [k, label] of [['appeal_window_days', 'срок подачи апелляции'], ['appeal_margin_days', 'запас после апелляции'],
    ['provisional_days', 'хранение без результата'], ['unlinked_days', 'записи вне экзаменов']]) {
    dl.append(NS.el('dt', {}, NS.t(label)), NS.el('dd', {'data-floor': k}, f[k] + ' ' + NS.t('дней')));
  }
  for (const [k, id] of Object.entries(inputs)) {
    $(id).min = String(f[k]);
    $(id + '-floor').textContent = NS.t('не меньше') + ' ' + f[k];
  }
}

function fillForm() {
  const q = $('r-qual').value;
  const v = (q && st.settings.qualifications[q]) || st.settings.council;
  for (const [k, id] of Object.entries(inputs)) $(id).value = v[k] || st.floors[k];
}

async function load() {
  st.settings = await NS.api('GET', '/api/v1/councils/' + enc(st.me.org) + '/retention');
  const n = await NS.names();
  const rows = [['', NS.t('всех квалификаций совета'), st.settings.council]];
  for (const [code, v] of Object.entries(st.settings.qualifications || {})) rows.push([code, NS.qualName(n, code), v]);
  NS.paginate(document.querySelector('#settings tbody'), rows, ([code, name, v]) => NS.el('tr', {'data-qualification': code},
    NS.el('td', {}, name), NS.el('td', {class: 'num'}, String(v.appeal_window_days)), NS.el('td', {class: 'num'}, String(v.provisional_days)),
    NS.el('td', {class: 'num'}, String(v.unlinked_days))));
}

$('r-qual').addEventListener('change', fillForm);
$('retention-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('r-save'), $('r-error'), async () => {
    const body = {qualification: $('r-qual').value};
    for (const [k, id] of Object.entries(inputs)) body[k] = parseInt($(id).value, 10);
    await NS.api('PUT', '/api/v1/councils/' + enc(st.me.org) + '/retention', body);
    $('r-state').textContent = NS.t('Сроки сохранены');
    await load();
  });
});

(async () => {
  st.me = await NS.start();
  st.floors = await NS.api('GET', '/api/v1/retention/floors');
  showFloors();
  const n = await NS.names();
  $('r-qual').append(NS.el('option', {value: ''}, NS.t('всех квалификаций совета')));
  for (const q of n.quals.filter((x) => x.council === st.me.org)) $('r-qual').append(NS.el('option', {value: q.code}, q.name + ' (' + q.code + ')'));
  await load();
  fillForm();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
