// The center's exam groups: form a group (qualification, site, date, time
// and parts), put candidates at the site's workstations, appoint experts.
'use strict';
Object.assign(NS.dict.en, {
  'Новая группа': 'New group', 'Дата': 'Date', 'Начало': 'Start', 'Окончание': 'End', 'Теория до (пусто — без теории)': 'Theory until (empty: no theory)',
  'Практическая часть': 'Practical part', 'после теории': 'after the theory', 'Создать группу': 'Create group', 'Группы центра': "The center's groups",
  'Части': 'Parts', 'Эксперты': 'Experts', 'Кандидаты и рабочие места': 'Candidates and workstations', 'Веб-камера': 'Webcam',
  'Добавить на рабочее место': 'Add at the workstation', 'Логин эксперта': "Expert's login", 'Назначить': 'Appoint', 'Открыть': 'Open',
  'Группа создана': 'Group created', 'Групп ещё нет: создайте первую в форме выше.': 'No groups yet: create the first with the form above.',
  'В группе нет кандидатов: добавьте их на рабочие места площадки.': 'The group has no candidates: add them at the workstations of the site.',
  'Эксперты не назначены: назначьте хотя бы одного.': 'No experts appointed: appoint at least one.',
  'Центр не допущен ни к одной квалификации: обратитесь в совет.': 'The center is authorised for no qualification: ask the council.',
  'Укажите время окончания позже начала': 'The end must be after the start',
});
const $ = (id) => document.getElementById(id);
const st = window.groups = {exams: [], selected: null, devices: [], names: null, me: null};
const enc = encodeURIComponent;
const at = (day, time) => new Date(day + 'T' + time).toISOString();

async function loadExams() {
  const from = new Date(Date.now() - 60 * 864e5).toISOString(), to = new Date(Date.now() + 180 * 864e5).toISOString();
  st.exams = (await NS.api('GET', '/api/v1/exams?from=' + enc(from) + '&to=' + enc(to)) || []).sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at));
  const n = st.names;
  NS.paginate(document.querySelector('#exams tbody'), st.exams, (e) => {
    const open = NS.el('button', {type: 'button', class: 'btn small light open'}, NS.t('Открыть'));
    open.addEventListener('click', () => select(e.id));
    const count = NS.el('td', {class: 'num'}, '…');
    NS.api('GET', '/api/v1/exams/' + enc(e.id) + '/candidates').then((l) => { count.textContent = String((l || []).length); }).catch(() => { count.textContent = '?'; });
    return NS.el('tr', {'data-exam': e.id, class: st.selected === e.id ? 'selected' : ''}, NS.el('td', {}, NS.qualName(n, e.qualification)),
      NS.el('td', {}, n.site[e.site] || e.site), NS.el('td', {}, NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site])),
      NS.el('td', {}, e.parts.map((p) => NS.tr(NS.partNames, p.kind) + ' ' + NS.fmtTime(Date.parse(p.starts_at), n.tz[e.site]).slice(0, 5) + '–' + NS.fmtTime(Date.parse(p.ends_at), n.tz[e.site]).slice(0, 5)).join(', ')),
      count, NS.el('td', {}, e.experts.map((x) => x.login).join(', ')), NS.el('td', {}, open));
  }, {size: 10, empty: NS.t('Групп ещё нет: создайте первую в форме выше.')});
}

async function select(id) {
  st.selected = id;
  const e = await NS.api('GET', '/api/v1/exams/' + enc(id));
  const n = st.names;
  $('group').classList.remove('hidden');
  $('group-title').textContent = NS.qualName(n, e.qualification) + ' · ' + (n.site[e.site] || e.site) + ' · ' + NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site]);
  $('group').dataset.exam = id;
  st.devices = await NS.api('GET', '/api/v1/sites/' + enc(e.site) + '/devices').catch(() => []) || [];
  const fillDevices = (sel, kind) => {
    sel.textContent = '';
    for (const d of st.devices.filter((x) => x.kind === kind && !x.disabled)) sel.append(NS.el('option', {value: d.name}, d.name));
  };
  fillDevices($('m-webcam'), 'webcam');
  fillDevices($('m-screen'), 'screen');
  pairScreen();
  await loadMembers(e);
  await loadExams();
  $('group').scrollIntoView();
}

// pairScreen picks the screen of the chosen webcam's workstation (ws1-cam,
// ws1-screen: the same name before the last dash).
function pairScreen() {
  const stem = $('m-webcam').value.replace(/-[^-]*$/, '');
  const match = Array.from($('m-screen').options).find((o) => o.value.replace(/-[^-]*$/, '') === stem);
  if (match) $('m-screen').value = match.value;
}

async function loadMembers(e) {
  e = e || await NS.api('GET', '/api/v1/exams/' + enc(st.selected));
  const members = await NS.api('GET', '/api/v1/exams/' + enc(st.selected) + '/candidates') || [];
  NS.paginate(document.querySelector('#members tbody'), members, (c) => NS.el('tr', {'data-candidate': c.candidate.id},
    NS.el('td', {}, NS.candName(c.candidate)), NS.el('td', {}, c.webcam), NS.el('td', {}, c.screen),
    NS.el('td', {}, NS.el('span', {class: 'state-tag ' + c.admission}, NS.tr(NS.admissionNames, c.admission)))),
  {size: 30, empty: NS.t('В группе нет кандидатов: добавьте их на рабочие места площадки.')});
  const inGroup = new Set(members.map((c) => c.candidate.id));
  const all = (await NS.api('GET', '/api/v1/candidates') || []).filter((c) => !inGroup.has(c.id)).sort((a, b) => NS.candName(a).localeCompare(NS.candName(b), 'ru'));
  $('m-candidate').textContent = '';
  for (const c of all) $('m-candidate').append(NS.el('option', {value: c.id}, NS.candName(c) + (c.snils ? ' · ' + c.snils : '')));
  const ul = $('experts');
  ul.textContent = '';
  for (const x of e.experts) ul.append(NS.el('li', {'data-expert': x.login}, (x.full_name ? x.full_name + ' (' + x.login + ')' : x.login) + ' · ' + NS.fmtDate(Date.parse(x.appointed_at))));
  if (!e.experts.length) ul.append(NS.el('li', {class: 'muted'}, NS.t('Эксперты не назначены: назначьте хотя бы одного.')));
}

$('m-webcam').addEventListener('change', pairScreen);
$('exam-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('x-create'), $('x-error'), async () => {
    const day = $('x-date').value, start = at(day, $('x-start').value), end = at(day, $('x-end').value);
    if (Date.parse(end) <= Date.parse(start)) throw new Error(NS.t('Укажите время окончания позже начала'));
    const parts = [];
    const tEnd = $('x-theory-end').value ? at(day, $('x-theory-end').value) : '';
    if (tEnd) parts.push({kind: 'theory', starts_at: start, ends_at: tEnd});
    if ($('x-practical').value === 'yes') parts.push({kind: 'practical', starts_at: tEnd || start, ends_at: end});
    const e = await NS.api('POST', '/api/v1/exams', {qualification: $('x-qual').value, site: $('x-site').value, starts_at: start, ends_at: end, parts});
    $('x-state').textContent = NS.t('Группа создана');
    await loadExams();
    await select(e.id);
  });
});
$('member-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('m-add'), $('m-error'), async () => {
    await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/candidates', {candidate: $('m-candidate').value, webcam: $('m-webcam').value, screen: $('m-screen').value});
    await loadMembers();
  });
});
$('expert-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  NS.busy($('e-appoint'), $('e-error'), async () => {
    await NS.api('POST', '/api/v1/exams/' + enc(st.selected) + '/experts', {login: $('e-login').value.trim()});
    $('e-login').value = '';
    await loadMembers();
  });
});

(async () => {
  st.me = await NS.start();
  NS.zoneNote($('zone'));
  st.names = await NS.names();
  const center = st.names.centers.find((c) => c.id === st.me.org);
  const quals = center ? center.qualifications : st.names.quals.map((q) => q.code);
  for (const code of quals) $('x-qual').append(NS.el('option', {value: code}, NS.qualName(st.names, code)));
  if (!quals.length) $('x-error').textContent = NS.t('Центр не допущен ни к одной квалификации: обратитесь в совет.');
  for (const s of st.names.sites) $('x-site').append(NS.el('option', {value: s.id}, s.name || s.id));
  const tomorrow = new Date(Date.now() + 864e5);
  $('x-date').value = tomorrow.getFullYear() + '-' + String(tomorrow.getMonth() + 1).padStart(2, '0') + '-' + String(tomorrow.getDate()).padStart(2, '0');
  await loadExams();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('error').textContent = e.message; });
