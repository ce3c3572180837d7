// The landing page of every role: the expert's review queue, or the exams
// the user may see with their candidates, by name.
'use strict';
Object.assign(NS.dict.en, {
  'Показать': 'Show', 'ожидают заключения': 'awaiting a verdict', 'все': 'all', 'Наблюдения': 'Observations', 'Состояние': 'State',
  'Нет кандидатов, ожидающих вашего заключения.': 'No candidates await your verdict.',
  'Вас ещё не назначили экспертом ни одного экзамена: назначает центр оценки квалификаций.': 'You are not appointed to any exam yet: the assessment center appoints experts.',
  'Экзаменов за эти 60 дней нет.': 'No exams in these 60 days.', 'мои': 'mine', 'нарушений': 'violations', 'всего': 'in all',
  'нет': 'none', 'идёт': 'under way', 'предстоит': 'to come',
});
const $ = (id) => document.getElementById(id);
const links = {site: [['site.html', 'site-link', 'Пульт площадки: допуск, пароли, состояние источников']],
  council: [['appeals.html', 'appeals-link', 'Апелляции и сроки решений']]};
let me = null;
let queue = [];

function renderQueue() {
  const open = $('queue-filter').value === 'open';
  const items = open ? queue.filter((q) => q.state !== 'verdict_given' && q.admission !== 'refused') : queue;
  const empty = queue.length ? NS.t('Нет кандидатов, ожидающих вашего заключения.')
    : NS.t('Вас ещё не назначили экспертом ни одного экзамена: назначает центр оценки квалификаций.');
  NS.paginate(document.querySelector('#queue tbody'), items, (q) => {
    const now = Date.now();
    const when = Date.parse(q.starts_at) > now ? NS.t('предстоит') : Date.parse(q.ends_at) > now ? NS.t('идёт') : '';
    const link = NS.el('a', {class: 'review-link', href: 'review.html?exam=' + encodeURIComponent(q.exam) + '&candidate=' + encodeURIComponent(q.candidate.id)},
      q.candidate.name);
    const state = NS.el('span', {class: 'state-tag ' + q.state}, NS.tr(NS.reviewStateNames, q.state));
    const extra = q.admission !== 'admitted' ? NS.el('div', {class: 'muted'}, NS.tr(NS.admissionNames, q.admission)) : '';
    const verdict = q.verdict ? NS.el('div', {class: 'muted'}, NS.t(q.verdict.procedure_confirmed ? 'Процедура соблюдена' : 'Процедура нарушена')) : '';
    const marks = NS.t('мои') + ': ' + q.marks + (q.violations ? ' (' + NS.t('нарушений') + ': ' + q.violations + ')' : '') +
      (q.all_marks > q.marks ? ' · ' + NS.t('всего') + ': ' + q.all_marks : '');
    const obs = q.observations ? q.observations + ' · ' + NS.fmtDuration(q.flagged_seconds) : NS.t('нет');
    return NS.el('tr', {'data-exam': q.exam, 'data-candidate': q.candidate.id, 'data-state': q.state},
      NS.el('td', {}, link, extra), NS.el('td', {}, q.qualification.name, NS.el('div', {class: 'muted'}, q.qualification.id)),
      NS.el('td', {}, NS.fmtSpan(q.starts_at, q.ends_at, q.time_zone), when ? NS.el('div', {class: 'muted'}, when) : ''),
      NS.el('td', {}, q.site.name || q.site.id, NS.el('div', {class: 'muted'}, q.center.name)),
      NS.el('td', {}, state, verdict), NS.el('td', {}, marks), NS.el('td', {}, obs));
  }, {empty});
}

async function loadQueue() {
  $('queue-section').classList.remove('hidden');
  NS.zoneNote($('queue-zone'));
  queue = await NS.api('GET', '/api/v1/review-queue') || [];
  renderQueue();
  $('queue-filter').addEventListener('change', renderQueue);
}

async function loadExams() {
  $('exams-section').classList.remove('hidden');
  NS.zoneNote($('exams-zone'));
  const n = await NS.names();
  const from = new Date(Date.now() - 30 * 864e5).toISOString(), to = new Date(Date.now() + 30 * 864e5).toISOString();
  const exams = (await NS.api('GET', '/api/v1/exams?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to)) || [])
    .sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at));
  NS.paginate(document.querySelector('#exams tbody'), exams, (e) => {
    const cell = NS.el('td', {}, NS.t('Загрузка…'));
    NS.api('GET', '/api/v1/exams/' + encodeURIComponent(e.id) + '/candidates').then((cands) => {
      cell.textContent = '';
      for (const c of cands || []) {
        cell.append(NS.el('div', {}, NS.candName(c.candidate), ' ', NS.el('span', {class: 'state-tag ' + c.admission}, NS.tr(NS.admissionNames, c.admission))));
      }
      if (!cands || !cands.length) cell.textContent = NS.t('нет');
    }).catch((err) => { cell.textContent = err.message; });
    return NS.el('tr', {'data-exam': e.id}, NS.el('td', {}, NS.qualName(n, e.qualification), NS.el('div', {class: 'muted'}, e.id)),
      NS.el('td', {}, n.site[e.site] || e.site), NS.el('td', {}, NS.fmtSpan(e.starts_at, e.ends_at, n.tz[e.site])), cell);
  }, {size: 10, empty: NS.t('Экзаменов за эти 60 дней нет.')});
}

(async () => {
  me = await NS.start();
  $('role-title').textContent = NS.t(NS.roleNames[me.role] || me.role);
  for (const [href, id, text] of links[me.role] || []) $('links').append(NS.el('a', {href, id, class: 'btn-link'}, NS.t(text)));
  const reminder = sessionStorage.getItem('reminder');
  if (reminder) { const r = $('reminder'); r.textContent = reminder; r.classList.remove('hidden'); }
  if (me.role === 'expert') await loadQueue(); else await loadExams();
  document.body.dataset.loaded = 'true';
})().catch((e) => { $('empty').textContent = e.message; });
