// Organisations: the council sees its centers and sites and authorises its
// centers for its qualifications; NARK sees every council, center and site.
// Each row links to its audit trail for NARK.
'use strict';
Object.assign(NS.dict.en, {
  'Советы': 'Councils', 'Совет': 'Council', 'Апелляционная комиссия': 'Appeals commission', 'Не хватает': 'Missing', 'Центры оценки квалификаций': 'Assessment centers',
  'Руководитель и контакты': 'Head and contacts', 'Квалификации': 'Qualifications', 'Экзаменационные площадки': 'Exam sites', 'Адрес и контакты': 'Address and contacts',
  'Квалификации, к оценке которых допущен центр': 'Qualifications the center is authorised to assess', 'Сохранить допуск': 'Save the authorisation',
  'Допуск сохранён': 'Authorisation saved', 'Квалификации центра': "The center's qualifications", 'Журнал': 'Audit trail', 'всё есть': 'complete',
  'Центров нет.': 'No centers.', 'Площадок нет.': 'No sites.', 'Советов нет.': 'No councils.',
  'У совета нет квалификаций: их заводит НАРК (nokstream qualification add).': 'The council has no qualifications: NARK adds them (nokstream qualification add).',
});
const $ = (id) => document.getElementById(id);
const st = window.orgs = {me: null, names: null, centers: [], sites: []};
const enc = encodeURIComponent;
const missing = (list) => (list && list.length ? NS.el('span', {class: 'st-bad'}, list.join(', ')) : NS.el('span', {class: 'muted'}, NS.t('всё есть')));

function auditLink(kind, id) {
  if (st.me.role !== 'nark') return '';
  return NS.el('a', {href: 'audit.html?' + kind + '=' + enc(id), class: 'audit-link'}, NS.t('Журнал'));
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
    return NS.el('tr', {'data-center': c.id}, NS.el('td', {}, c.name, NS.el('div', {class: 'muted'}, c.id)),
      NS.el('td', {}, c.head || '', NS.el('div', {class: 'muted'}, [c.email, (c.phones || []).join(', '), c.website].filter(Boolean).join(' · '))),
      NS.el('td', {class: 'quals'}, (c.qualifications || []).map((q) => NS.qualName(st.names, q)).join('; ')), NS.el('td', {}, missing(c.missing)), actions);
  }, {empty: NS.t('Центров нет.')});
}

function editCenter(c) {
  $('center-edit').classList.remove('hidden');
  $('center-edit').dataset.center = c.id;
  $('center-edit-title').textContent = NS.t('Квалификации центра') + ': ' + c.name;
  const box = $('quals');
  box.textContent = '';
  const own = st.names.quals.filter((q) => q.council === st.me.org);
  for (const q of own) {
    const id = 'q-' + q.code.replace(/[^a-zA-Z0-9_-]/g, '_');
    const cb = NS.el('input', {type: 'checkbox', id, value: q.code});
    cb.checked = (c.qualifications || []).includes(q.code);
    box.append(NS.el('div', {}, cb, ' ', NS.el('label', {for: id, class: 'inline'}, q.name + ' (' + q.code + ')')));
  }
  if (!own.length) box.append(NS.el('p', {class: 'muted'}, NS.t('У совета нет квалификаций: их заводит НАРК (nokstream qualification add).')));
  $('quals-state').textContent = '';
  $('center-edit').scrollIntoView();
}

$('quals-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('quals-save'), $('quals-error'), async () => {
    const codes = Array.from(document.querySelectorAll('#quals input:checked')).map((x) => x.value);
    await NS.api('PUT', '/api/v1/centers/' + enc($('center-edit').dataset.center) + '/qualifications', {qualifications: codes});
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

(async () => {
  st.me = await NS.start();
  if (st.me.role === 'nark') { $('page-title').textContent = NS.t('Организации'); $('page-title').dataset.ru = 'Организации'; }
  st.names = await NS.names();
  if (st.me.role === 'nark') await loadCouncils();
  await loadCenters();
  await loadSites();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
