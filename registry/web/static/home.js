// The landing page: who is signed in, and the exams they may see with a
// link to each candidate's recordings.
'use strict';
if (!NS.token()) location.href = '/ui/';
NS.langButton(document.getElementById('lang'));
document.getElementById('logout').addEventListener('click', NS.logout);
const roles = {nark: 'Национальное агентство (НАРК)', council: 'Совет по профессиональным квалификациям', center: 'Центр оценки квалификаций',
  site: 'Экзаменационная площадка', expert: 'Эксперт'};

(async () => {
  const me = await NS.api('GET', '/api/v1/auth/me');
  document.getElementById('who').textContent = me.login + (me.org ? ' · ' + me.org : '');
  document.getElementById('role-title').textContent = NS.t(roles[me.role] || me.role);
  const links = {site: [['site.html', 'site-link', 'Пульт площадки: допуск, пароли, состояние источников']],
    council: [['appeals.html', 'appeals-link', 'Апелляции и сроки решений']]};
  for (const [href, id, text] of links[me.role] || []) document.getElementById('links').append(NS.el('a', {href, id, class: 'btn-link'}, NS.t(text)));
  const reminder = sessionStorage.getItem('reminder');
  if (reminder) { const r = document.getElementById('reminder'); r.textContent = reminder; r.classList.remove('hidden'); }
  const from = new Date(Date.now() - 30 * 864e5).toISOString(), to = new Date(Date.now() + 30 * 864e5).toISOString();
  const exams = await NS.api('GET', '/api/v1/exams?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to));
  const tbody = document.querySelector('#exams tbody');
  if (!exams || exams.length === 0) document.getElementById('empty').textContent = NS.t('Экзаменов нет');
  for (const e of exams || []) {
    const cell = NS.el('td', {});
    const tr = NS.el('tr', {}, NS.el('td', {}, e.id + ' · ' + e.qualification), NS.el('td', {}, e.site),
      NS.el('td', {}, NS.fmtDate(Date.parse(e.starts_at)) + ' – ' + NS.fmtTime(Date.parse(e.ends_at))), cell);
    tbody.append(tr);
    try {
      const cands = await NS.api('GET', '/api/v1/exams/' + encodeURIComponent(e.id) + '/candidates');
      for (const c of cands || []) {
        const name = c.candidate.full_name || [c.candidate.last_name, c.candidate.first_name].join(' ');
        cell.append(NS.el('div', {}, NS.el('a', {class: 'review-link', href: 'review.html?exam=' + encodeURIComponent(e.id) + '&candidate=' + encodeURIComponent(c.candidate.id)}, name),
          ' ', NS.el('span', {class: 'muted'}, c.admission)));
      }
    } catch (err) { cell.textContent = err.message; }
  }
})().catch((e) => { document.getElementById('empty').textContent = e.message; });
