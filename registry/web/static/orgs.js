// Organisations: the council sees its centers and sites and authorises its
// centers for its qualifications; NARK sees every council, center and site.
// Each row links to its audit trail for NARK. A council also authorises
// another council's center for its own qualifications (a multi-industry
// center): the center then shows here with its home council named (the
// API names it: a council does not read another council), and only this
// council's qualifications.
'use strict';
Object.assign(NS.dict.en, {
  'Советы': 'Councils', 'Совет': 'Council', 'Апелляционная комиссия': 'Appeals commission', 'Не хватает': 'Missing', 'Центры оценки квалификаций': 'Assessment centers',
  'Руководитель и контакты': 'Head and contacts', 'Квалификации': 'Qualifications', 'Экзаменационные площадки': 'Exam sites', 'Адрес и контакты': 'Address and contacts',
  'Квалификации, к оценке которых допущен центр': 'Qualifications the center is authorised to assess', 'Сохранить допуск': 'Save the authorisation',
  'Допуск сохранён': 'Authorisation saved', 'Квалификации центра': "The center's qualifications", 'Журнал': 'Audit trail', 'всё есть': 'complete',
  'Центров нет.': 'No centers.', 'Площадок нет.': 'No sites.', 'Советов нет.': 'No councils.',
  'У совета нет квалификаций: их заводит НАРК (nokstream qualification add).': 'The council has no qualifications: NARK adds them (nokstream qualification add).',
  'Зарегистрировать центр или площадку': 'Register a center or a site', 'Новый центр': 'New center', 'Новая площадка': 'New site',
  'Код (латиница, цифры, -)': 'Code (latin letters, digits, -)', 'Наименование': 'Name', 'Руководитель': 'Head', 'Эл. почта': 'E-mail', 'Телефон': 'Phone',
  'Официальный сайт': 'Official site', 'Юридический, фактический и почтовый адрес': 'Legal, actual and postal address', 'Адрес': 'Address', 'Центр': 'Center',
  'Зарегистрировать центр': 'Register the center', 'Зарегистрировать площадку': 'Register the site', 'Центр зарегистрирован': 'Center registered',
  'Площадка зарегистрирована': 'Site registered', 'Часовой пояс': 'Time zone',
  'Допустить центр другого совета': "Authorise another council's center", 'Код центра': "The center's code",
  'Межотраслевой центр остаётся центром своего совета. Совет, допустивший его к своим квалификациям, видит сведения центра и его площадки и только экзамены по своим квалификациям.':
    "A multi-industry center stays its own council's. A council that authorises it for its qualifications sees the center's details and sites, and only the exams of its own qualifications.",
  'Квалификации совета, к оценке которых допускается центр': "The council's qualifications the center is authorised to assess",
  'Допустить центр': 'Authorise the center', 'Центр допущен': 'Center authorised', 'Отметьте хотя бы одну квалификацию.': 'Tick at least one qualification.',
  'Центр совета': 'Center of council', 'межотраслевой': 'multi-industry', 'совет': 'council',
});
const $ = (id) => document.getElementById(id);
const st = window.orgs = {me: null, names: null, centers: [], sites: []};
const enc = encodeURIComponent;
// What a center or council lacks comes from the API in English.
const missingRu = {'head': 'руководитель', 'official site': 'официальный сайт', 'legal address': 'юридический адрес',
  'actual address': 'фактический адрес', 'postal address': 'почтовый адрес', 'e-mail': 'эл. почта', 'phone': 'телефон', 'members': 'члены комиссии'};
const missing = (list) => (list && list.length
  ? NS.el('span', {class: 'st-bad'}, list.map((m) => (NS.lang() === 'ru' ? missingRu[m] || m : m)).join(', '))
  : NS.el('span', {class: 'muted'}, NS.t('всё есть')));

function auditLink(kind, id) {
  if (st.me.role !== 'nark') return '';
  return NS.el('a', {href: 'audit.html?' + kind + '=' + enc(id), class: 'audit-link'}, NS.t('Журнал'));
}

// qualsOf says what center c is authorised for; to NARK and the center,
// which see every council's part, it names the council of each
// authorisation that is not the center's own.
function qualsOf(c) {
  const list = c.authorisations || (c.qualifications || []).map((q) => ({qualification: q, council: c.council}));
  return list.map((a) => NS.qualName(st.names, a.qualification) +
    (st.me.role !== 'council' && a.council !== c.council ? ' — ' + NS.t('совет') + ' ' + (a.council_name || a.council) : '')).join('; ');
}

async function loadCenters() {
  st.centers = await NS.api('GET', '/api/v1/centers') || [];
  NS.paginate(document.querySelector('#centers tbody'), st.centers, (c) => {
    const actions = NS.el('td', {});
    if (st.me.role === 'council') {
      const edit = NS.el('button', {type: 'button', class: 'btn small light edit-quals'}, NS.t('Квалификации центра'));
      edit.addEventListener('click', () => editCenter(c));
      actions.append(edit);
    }
    actions.append(auditLink('org', c.id));
    const foreign = st.me.role === 'council' && c.council !== st.me.org;
    const home = foreign ? NS.el('div', {class: 'home-council'}, NS.el('span', {class: 'state-tag'}, NS.t('межотраслевой')), ' ', NS.t('Центр совета') + ' ' + (c.council_name || c.council)) : '';
    return NS.el('tr', {'data-center': c.id}, NS.el('td', {}, c.name, NS.el('div', {class: 'muted'}, c.id), home),
      NS.el('td', {}, c.head || '', NS.el('div', {class: 'muted'}, [c.email, (c.phones || []).join(', '), c.website].filter(Boolean).join(' · '))),
      NS.el('td', {class: 'quals'}, qualsOf(c)), NS.el('td', {}, missing(c.missing)), actions);
  }, {empty: NS.t('Центров нет.')});
}

// ownQualBoxes fills box with a checkbox per qualification of the
// council, ticked if checked(code) says so, ids prefixed with prefix.
function ownQualBoxes(box, prefix, checked) {
  box.textContent = '';
  const own = st.names.quals.filter((q) => q.council === st.me.org);
  for (const q of own) {
    const id = prefix + q.code.replace(/[^a-zA-Z0-9_-]/g, '_');
    const cb = NS.el('input', {type: 'checkbox', id, value: q.code});
    cb.checked = checked(q.code);
    box.append(NS.el('div', {}, cb, ' ', NS.el('label', {for: id, class: 'inline'}, q.name + ' (' + q.code + ')')));
  }
  if (!own.length) box.append(NS.el('p', {class: 'muted'}, NS.t('У совета нет квалификаций: их заводит НАРК (nokstream qualification add).')));
}

function editCenter(c) {
  $('center-edit').classList.remove('hidden');
  $('center-edit').dataset.center = c.id;
  $('center-edit-title').textContent = NS.t('Квалификации центра') + ': ' + c.name;
  ownQualBoxes($('quals'), 'q-', (code) => (c.qualifications || []).includes(code));
  $('quals-state').textContent = '';
  $('center-edit').scrollIntoView();
}

$('quals-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('quals-save'), $('quals-error'), async () => {
    // The council's own authorisations only (the center's list shows no
    // other council's): added ones posted, removed ones withdrawn.
    const id = $('center-edit').dataset.center;
    const was = (st.centers.find((c) => c.id === id) || {}).qualifications || [];
    const codes = Array.from(document.querySelectorAll('#quals input:checked')).map((x) => x.value);
    const added = codes.filter((q) => !was.includes(q));
    if (added.length) await NS.api('POST', '/api/v1/centers/' + enc(id) + '/authorisations', {qualifications: added});
    for (const q of was.filter((q) => !codes.includes(q))) await NS.api('DELETE', '/api/v1/centers/' + enc(id) + '/authorisations/' + enc(q));
    $('quals-state').textContent = NS.t('Допуск сохранён');
    await loadCenters();
  });
});

async function loadSites() {
  st.sites = await NS.api('GET', '/api/v1/sites') || [];
  const centerName = Object.fromEntries(st.centers.map((c) => [c.id, c.name]));
  NS.paginate(document.querySelector('#sites tbody'), st.sites, (s) => NS.el('tr', {'data-site': s.id},
    NS.el('td', {}, s.name || s.id, NS.el('div', {class: 'muted'}, s.id)), NS.el('td', {}, centerName[s.center] || s.center),
    NS.el('td', {}, s.address || '', NS.el('div', {class: 'muted'}, [s.email, (s.phones || []).join(', ')].filter(Boolean).join(' · '))),
    NS.el('td', {}, (s.time_zone || '') + ' (' + NS.zoneLabel(s.time_zone || 'Europe/Moscow') + ')'),
    NS.el('td', {}, auditLink('org', s.id))), {empty: NS.t('Площадок нет.')});
}

async function loadCouncils() {
  $('councils-section').classList.remove('hidden');
  const list = await NS.api('GET', '/api/v1/councils') || [];
  NS.paginate(document.querySelector('#councils tbody'), list, (c) => NS.el('tr', {'data-council': c.id},
    NS.el('td', {}, c.name, NS.el('div', {class: 'muted'}, c.id)),
    NS.el('td', {}, (c.commission.members || []).join(', '), NS.el('div', {class: 'muted'}, [c.commission.address, c.commission.email].filter(Boolean).join(' · '))),
    NS.el('td', {}, missing(c.missing)), NS.el('td', {}, auditLink('org', c.id))), {empty: NS.t('Советов нет.')});
}

// The council registers its centers (authorised for the qualifications
// ticked afterwards) and their sites.
// The zones of Russia's sites, west to east.
const zones = ['Europe/Kaliningrad', 'Europe/Moscow', 'Europe/Samara', 'Asia/Yekaterinburg', 'Asia/Omsk', 'Asia/Novosibirsk', 'Asia/Krasnoyarsk',
  'Asia/Irkutsk', 'Asia/Yakutsk', 'Asia/Vladivostok', 'Asia/Magadan', 'Asia/Kamchatka'];
function fillZones() {
  const sel = $('ns-tz');
  if (sel.options.length) return;
  for (const z of zones) sel.append(NS.el('option', {value: z}, z + ' (' + NS.zoneLabel(z) + ')'));
  sel.value = 'Europe/Moscow';
}
function fillCenterSelect() {
  fillZones();
  const sel = $('ns-center');
  sel.textContent = '';
  // Sites are registered by the center's own council only.
  for (const c of st.centers.filter((c) => c.council === st.me.org)) sel.append(NS.el('option', {value: c.id}, c.name));
}
$('authorise-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('ac-save'), $('ac-error'), async () => {
    const codes = Array.from(document.querySelectorAll('#ac-quals input:checked')).map((x) => x.value);
    if (!codes.length) throw new Error(NS.t('Отметьте хотя бы одну квалификацию.'));
    await NS.api('POST', '/api/v1/centers/' + enc($('ac-center').value.trim()) + '/authorisations', {qualifications: codes});
    $('ac-state').textContent = NS.t('Центр допущен');
    $('authorise-form').reset();
    await loadCenters();
    await loadSites();
  });
});
const phones = (id) => ($(id).value.trim() ? [$(id).value.trim()] : []);
$('new-center-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('nc-save'), $('nc-error'), async () => {
    const addr = $('nc-address').value.trim();
    await NS.api('POST', '/api/v1/centers', {id: $('nc-id').value.trim(), name: $('nc-name').value.trim(), head: $('nc-head').value.trim(),
      email: $('nc-email').value.trim(), phones: phones('nc-phone'), website: $('nc-website').value.trim(),
      legal_address: addr, actual_address: addr, postal_address: addr, qualifications: []});
    $('nc-state').textContent = NS.t('Центр зарегистрирован');
    $('new-center-form').reset();
    await loadCenters();
    fillCenterSelect();
  });
});
$('new-site-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('ns-save'), $('ns-error'), async () => {
    await NS.api('POST', '/api/v1/sites', {id: $('ns-id').value.trim(), center: $('ns-center').value, name: $('ns-name').value.trim(),
      address: $('ns-address').value.trim(), email: $('ns-email').value.trim(), phones: phones('ns-phone'), time_zone: $('ns-tz').value});
    $('ns-state').textContent = NS.t('Площадка зарегистрирована');
    for (const id of ['ns-id', 'ns-name', 'ns-address', 'ns-email', 'ns-phone']) $(id).value = '';
    await loadSites();
  });
});

(async () => {
  st.me = await NS.start();
  if (st.me.role === 'nark') { $('page-title').textContent = NS.t('Организации'); $('page-title').dataset.ru = 'Организации'; }
  st.names = await NS.names();
  if (st.me.role === 'nark') await loadCouncils();
  await loadCenters();
  await loadSites();
  if (st.me.role === 'council') {
    $('register-section').classList.remove('hidden');
    fillCenterSelect();
    $('authorise-section').classList.remove('hidden');
    ownQualBoxes($('ac-quals'), 'ac-q-', () => false);
  }
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
