// Shared by every page: the session token, API calls and the language switch.
'use strict';
const NS = {};
NS.dict = {
  en: {
    'Вход для сотрудников': 'Staff login', 'Логин': 'Login', 'Пароль': 'Password', 'Войти': 'Sign in',
    'Смена временного пароля': 'Change the temporary password', 'Новый пароль': 'New password',
    'Повторите новый пароль': 'Repeat the new password', 'Сменить пароль': 'Change password',
    'Выйти': 'Sign out', 'Экзамены': 'Exams', 'Кандидаты': 'Candidates', 'Просмотр записи': 'Review',
    'Воспроизвести': 'Play', 'Пауза': 'Pause', 'След. наблюдение': 'Next observation', 'Пропускать пропуски': 'Skip gaps',
    'Версия': 'Rendition', 'просмотровая': 'review', 'оригинал': 'original', 'Отметки': 'Marks', 'Добавить отметку': 'Add mark',
    'нарушение': 'violation', 'заметка': 'note', 'Заключение эксперта': 'Expert verdict', 'Процедура соблюдена': 'Procedure followed',
    'Процедура нарушена': 'Procedure not followed', 'Причины': 'Reasons', 'Сохранить заключение': 'Save verdict',
    'Цель доступа к записям': 'Purpose of access to the recordings', 'Продолжить': 'Continue', 'нет записи': 'no recording',
    'запись есть': 'recorded', 'пропуск': 'gap', 'наблюдение': 'observation', 'отметка': 'mark',
    'Экзамен: вход': 'Exam: sign in', 'Пароль экзамена': 'Exam password', 'Начать запись': 'Start recording',
    'Пульт экзаменационной площадки': 'Exam-site console', 'Экзамены сегодня': "Today's exams", 'Состояние источников': 'Sources',
    'Пароли кандидатов': 'Candidate passwords', 'Кандидат': 'Candidate', 'Рабочее место': 'Workstation', 'Пароль экзамена': 'Exam password',
    'Действует': 'Valid', 'Допуск': 'Admission', 'Действие': 'Action', 'Допустить': 'Admit', 'Отказать': 'Refuse', 'причина отказа': 'reason for refusal',
    'Укажите причину отказа': 'Give the reason for refusal', 'ожидает': 'pending', 'допущен': 'admitted', 'не допущен': 'refused', 'пароль выдан': 'password issued',
    'Выдать пароли допущенным и напечатать': 'Issue passwords to the admitted and print', 'Сегодня экзаменов нет': 'No exams today',
    'камера помещения': 'room camera', 'веб-камера': 'webcam', 'экран': 'screen', 'в эфире': 'live', 'не в эфире, молчит с': 'not live, silent since',
    'нет записи за 30 мин': 'nothing in 30 min', 'посл. сегмент': 'last segment', 'с назад': 's ago', 'кбит/с': 'kbit/s', 'обновлено': 'updated',
    'Пароль показывается один раз; храните лист до конца экзамена и уничтожьте после.': 'Each password is shown once; keep the sheet until the end of the exam, then destroy it.',
    'Апелляции и решения совета': 'Appeals and council decisions', 'Результаты, ожидающие решения': 'Results awaiting a decision', 'Апелляции': 'Appeals',
    'Шаг': 'Step', 'С': 'Since', 'Срок': 'Due', 'Состояние': 'State', 'Подана': 'Filed', 'Причина': 'Reason', 'Удержание записей': 'Legal hold', 'Действия': 'Actions',
    'Зарегистрировать апелляцию': 'Register an appeal', 'Открыть апелляцию': 'Open appeal', 'Цель выгрузки доказательств': 'Purpose of the evidence export',
    'Выгрузка фиксируется в журнале вместе с указанной целью.': 'The export is audited with its purpose.', 'Выгрузить': 'Export', 'Отмена': 'Cancel',
    'Выгрузить доказательства': 'Export evidence', 'Закрыть': 'Close', 'удерживаются': 'held', 'снято': 'lifted', 'открыта': 'open', 'решена': 'decided', 'закрыта': 'closed',
    'просрочено': 'overdue', 'осталось': 'left', 'дн.': 'd', 'Нет результатов, ожидающих решения': 'No results awaiting a decision', 'Апелляций нет': 'No appeals',
    'решение совета (14 дней)': 'council decision (14 days)', 'проверка НАРК (7 дней)': 'NARK verification (7 days)', 'Выгружено': 'Exported',
    'Выгрузка…': 'Exporting…', 'Ошибка выгрузки': 'Export failed', 'Проверка: nokstream verify': 'Check: nokstream verify',
    'Пульт площадки: допуск, пароли, состояние источников': 'Site console: admission, passwords, sources',
    'Апелляции и сроки решений': 'Appeals and decision deadlines',
    'Согласен': 'I agree', 'Идёт запись': 'Recording', 'Камера': 'Camera', 'Экран': 'Screen',
  },
};
NS.lang = () => localStorage.getItem('lang') || 'ru';
NS.t = (s) => (NS.lang() === 'ru' ? s : (NS.dict[NS.lang()] || {})[s] || s);
NS.translate = (root) => {
  for (const el of (root || document).querySelectorAll('[data-i18n]')) {
    if (!el.dataset.ru) el.dataset.ru = el.textContent;
    el.textContent = NS.t(el.dataset.ru);
  }
  document.documentElement.lang = NS.lang();
};
NS.langButton = (btn) => {
  if (btn.dataset.bound) return;
  btn.dataset.bound = '1';
  const show = () => { btn.textContent = NS.lang() === 'ru' ? 'EN' : 'RU'; };
  show();
  btn.addEventListener('click', () => { localStorage.setItem('lang', NS.lang() === 'ru' ? 'en' : 'ru'); show(); NS.translate(); document.dispatchEvent(new Event('langchange')); });
  NS.translate();
};
NS.token = () => sessionStorage.getItem('token');
NS.purpose = '';
// withPurpose adds the declared purpose of access to a path's query: the API
// writes it to the audit log (the X-Purpose header cannot carry Cyrillic).
NS.withPurpose = (path) => NS.purpose ? path + (path.includes('?') ? '&' : '?') + 'purpose=' + encodeURIComponent(NS.purpose) : path;
// api calls the API with the session token; it returns the decoded JSON
// or throws an Error carrying the API's error text and status.
NS.api = async (method, path, body, extra) => {
  const headers = Object.assign({}, extra || {});
  if (NS.token()) headers['Authorization'] = 'Bearer ' + NS.token();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!resp.ok) {
    if (resp.status === 401 && NS.token() && !path.endsWith('/auth/login')) { sessionStorage.removeItem('token'); location.href = '/ui/'; }
    // Nothing works before the privacy policy is accepted: show it.
    if (resp.status === 403 && data && data.code === 'privacy_policy_required') NS.showPolicy();
    const err = new Error((data && data.error) || resp.statusText || String(resp.status));
    err.status = resp.status;
    err.code = (data && data.code) || '';
    throw err;
  }
  return data;
};
NS.fetchText = async (path) => {
  const headers = {};
  if (NS.token()) headers['Authorization'] = 'Bearer ' + NS.token();
  const resp = await fetch(path, {headers});
  if (!resp.ok) throw new Error(path + ': ' + resp.status + ' ' + (await resp.text()));
  return resp.text();
};
NS.el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
// Times are in the browser's zone, or in tz (an exam site's IANA zone).
NS.fmtTime = (ms, tz) => new Date(ms).toLocaleTimeString('ru-RU', Object.assign({hour: '2-digit', minute: '2-digit', second: '2-digit'}, tz ? {timeZone: tz} : {}));
NS.fmtDate = (ms, tz) => new Date(ms).toLocaleString('ru-RU', Object.assign({day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit'}, tz ? {timeZone: tz} : {}));
// NS.zoneLabel names zone tz at ms as its offset ("GMT+5").
NS.zoneLabel = (tz, ms) => {
  try {
    const p = new Intl.DateTimeFormat('ru-RU', {timeZone: tz, timeZoneName: 'shortOffset'}).formatToParts(new Date(ms || Date.now()));
    return (p.find((x) => x.type === 'timeZoneName') || {}).value || tz;
  } catch (e) { return tz; }
};
NS.logout = () => { sessionStorage.clear(); location.href = '/ui/'; };
// NS.showPolicy opens the privacy policy, which returns to this page once
// accepted.
NS.showPolicy = () => {
  const page = location.pathname.split('/').pop() || 'home.html';
  if (page !== 'privacy.html') location.href = 'privacy.html?next=' + encodeURIComponent(page + location.search);
};

// ---- The cabinets (issue 14): one navigation per role, names instead of
// ids, translated states, dates with their zone, paginated lists.
Object.assign(NS.dict.en, {
  'Очередь проверки': 'Review queue', 'Экзаменационные группы': 'Exam groups', 'Результаты': 'Results', 'Сроки': 'Deadlines',
  'Решения и апелляции': 'Decisions and appeals', 'Центры и площадки': 'Centers and sites', 'Хранение записей': 'Retention',
  'Пульт площадки': 'Site console', 'Организации': 'Organisations', 'Журнал аудита': 'Audit trail', 'Разделы': 'Sections',
  'Решения по результатам': 'Decisions on results', 'Апелляции и сроки': 'Appeals and deadlines', 'Проверка результатов': 'Verification of results', 'Реестр': 'Register',
  'от': 'of', 'Цель': 'Purpose', 'Вид отметки': 'Kind of mark', 'Источник': 'Source', 'Что произошло': 'What happened', 'Другие эксперты': 'Other experts',
  'Страницы': 'Pages', 'Выберите файл': 'Choose a file',
  'Национальное агентство (НАРК)': 'National agency (NARK)', 'Совет по профессиональным квалификациям': 'Qualifications council',
  'Центр оценки квалификаций': 'Assessment center', 'Экзаменационная площадка': 'Exam site', 'Эксперт': 'Expert',
  'ожидает допуска': 'awaiting admission', 'не начата': 'not started', 'идёт проверка': 'in progress', 'заключение дано': 'verdict given',
  'Назад': 'Previous', 'Вперёд': 'Next', 'стр.': 'page', 'из': 'of', 'Время указано в часовом поясе': 'Times are in the time zone',
  'Время экзаменов — в часовом поясе площадки (указан рядом); прочее время — в часовом поясе': "Exam times are in the site's time zone (shown beside them); other times in the time zone",
  'Экзамен': 'Exam', 'Площадка': 'Site', 'Время': 'Time', 'Кандидаты': 'Candidates', 'Квалификация': 'Qualification', 'Центр': 'Center',
  'Экзаменов нет': 'No exams', 'Загрузка…': 'Loading…', 'Сохранено': 'Saved', 'Сохранить': 'Save', 'Поиск': 'Search', 'Изменить': 'Edit',
  'теория': 'theory', 'практика': 'practice', 'Неверный логин или пароль': 'Wrong login or password',
  'Слишком много попыток, подождите': 'Too many attempts, please wait', 'Пароли не совпадают': 'The passwords differ',
  'Учётные записи': 'Accounts',
});
NS.roleNames = {nark: 'Национальное агентство (НАРК)', council: 'Совет по профессиональным квалификациям', center: 'Центр оценки квалификаций',
  site: 'Экзаменационная площадка', expert: 'Эксперт'};
// NS.navItems are the sections of each role's cabinet: [page, link id, label].
NS.navItems = {
  expert: [['home.html', 'nav-home', 'Очередь проверки']],
  center: [['home.html', 'nav-home', 'Экзамены'], ['candidates.html', 'nav-candidates', 'Кандидаты'], ['groups.html', 'nav-groups', 'Экзаменационные группы'],
    ['results.html', 'nav-results', 'Результаты']],
  council: [['home.html', 'nav-home', 'Экзамены'], ['results.html', 'nav-results', 'Решения по результатам'], ['appeals.html', 'nav-appeals', 'Апелляции и сроки'],
    ['orgs.html', 'nav-orgs', 'Центры и площадки'], ['retention.html', 'nav-retention', 'Хранение записей']],
  site: [['home.html', 'nav-home', 'Экзамены'], ['site.html', 'nav-site', 'Пульт площадки']],
  nark: [['home.html', 'nav-home', 'Экзамены'], ['results.html', 'nav-results', 'Проверка результатов'], ['register.html', 'nav-register', 'Реестр'],
    ['orgs.html', 'nav-orgs', 'Организации'], ['accounts.html', 'nav-accounts', 'Учётные записи'], ['audit.html', 'nav-audit', 'Журнал аудита']],
};
NS.addNav = (role, item, before) => {
  const list = NS.navItems[role];
  if (!list || list.some((x) => x[0] === item[0])) return;
  const i = before ? list.findIndex((x) => x[0] === before) : -1;
  if (i < 0) list.push(item); else list.splice(i, 0, item);
};
NS.admissionNames = {pending: 'ожидает допуска', admitted: 'допущен', refused: 'не допущен'};
NS.reviewStateNames = {not_started: 'не начата', in_progress: 'идёт проверка', verdict_given: 'заключение дано'};
NS.partNames = {theory: 'теория', practical: 'практика'};
NS.tr = (map, v) => NS.t(map[v] || v || '');
NS.candName = (c) => c.full_name || c.name || [c.last_name, c.first_name, c.middle_name].filter(Boolean).join(' ');

// An exam's times are shown in its site's zone, named beside them
// (NS.fmtSpan with the site's time_zone); other times in the browser's
// zone, named once on every page that shows times.
NS.zone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
NS.zoneOffset = () => {
  const m = -new Date().getTimezoneOffset(), s = m < 0 ? '−' : '+', a = Math.abs(m);
  return 'UTC' + s + Math.floor(a / 60) + (a % 60 ? ':' + String(a % 60).padStart(2, '0') : '');
};
NS.zoneNote = (el) => {
  if (el) el.textContent = NS.t('Время экзаменов — в часовом поясе площадки (указан рядом); прочее время — в часовом поясе') + ': ' + NS.zone() + ' (' + NS.zoneOffset() + ')';
};
// NS.fmtISO writes a calendar date of the API (YYYY-MM-DD) as people read it.
NS.fmtISO = (d) => (d && /^\d{4}-\d{2}-\d{2}$/.test(d) ? d.split('-').reverse().join('.') : d || '');
NS.fmtDay = (ms) => new Date(ms).toLocaleDateString('ru-RU', {day: '2-digit', month: '2-digit', year: 'numeric'});
// NS.fmtSpan writes an exam's window; with tz, the exam site's zone, in it
// and with the zone named.
NS.fmtSpan = (from, to, tz) => NS.fmtDate(Date.parse(from), tz) + ' – ' + NS.fmtTime(Date.parse(to), tz).slice(0, 5) +
  (tz ? ' (' + NS.zoneLabel(tz, Date.parse(from)) + ')' : '');
NS.fmtDuration = (s) => {
  s = Math.round(s);
  if (s < 60) return s + ' с';
  const m = Math.floor(s / 60);
  return m < 60 ? m + ' мин ' + (s % 60) + ' с' : Math.floor(m / 60) + ' ч ' + (m % 60) + ' мин';
};

// NS.start checks the session, fills the header (who is signed in, with the
// organisation's name) and the role's navigation, and returns the user.
NS.start = async () => {
  if (!NS.token()) { location.href = '/ui/'; throw new Error('not signed in'); }
  const lang = document.getElementById('lang');
  if (lang) NS.langButton(lang);
  const out = document.getElementById('logout');
  if (out && !out.dataset.bound) { out.dataset.bound = '1'; out.addEventListener('click', NS.logout); }
  const me = await NS.api('GET', '/api/v1/auth/me');
  NS.me = me;
  if (me.privacy_policy && me.privacy_policy.required) { NS.showPolicy(); throw new Error('privacy policy not accepted'); }
  // An organisation's admin manages its accounts.
  if (me.org_admin) NS.addNav(me.role, ['accounts.html', 'nav-accounts', 'Учётные записи']);
  const who = document.getElementById('who');
  if (who) {
    // The signed-in user's name links to their own details.
    const link = NS.el('a', {href: 'profile.html', id: 'who-link'}, me.full_name || me.login);
    who.textContent = '';
    who.append(link);
    const org = await NS.orgName(me).catch(() => '');
    if (org) who.append(' · ' + org);
  }
  NS.renderNav();
  document.addEventListener('langchange', NS.renderNav);
  return me;
};
NS.renderNav = () => {
  const nav = document.getElementById('nav');
  if (!nav || !NS.me) return;
  nav.textContent = '';
  const page = location.pathname.split('/').pop() || 'home.html';
  const ul = NS.el('ul', {});
  for (const [href, id, label] of NS.navItems[NS.me.role] || []) {
    const a = NS.el('a', {href, id}, NS.t(label));
    if (href === page) a.setAttribute('aria-current', 'page');
    ul.append(NS.el('li', {}, a));
  }
  nav.append(NS.el('span', {class: 'role'}, NS.t(NS.roleNames[NS.me.role] || NS.me.role)), ul);
};
// NS.orgName returns the name of the caller's organisation (cached for the
// session), or "" where the role may not read it.
NS.orgName = async (me) => {
  if (!me.org) return '';
  const key = 'org:' + me.org;
  const cached = sessionStorage.getItem(key);
  if (cached) return cached;
  const path = {council: '/api/v1/councils/', center: '/api/v1/centers/', site: '/api/v1/sites/'}[me.role];
  // An expert may not read their council: no name then, rather than an id.
  let name = '';
  if (path) { try { name = (await NS.api('GET', path + encodeURIComponent(me.org))).name || ''; } catch (e) { /* no name */ } }
  sessionStorage.setItem(key, name);
  return name;
};
// NS.names loads what the caller may read of qualifications, sites and
// centers, as maps from id to name.
NS.names = async () => {
  if (NS._names) return NS._names;
  const get = (p) => NS.api('GET', p).catch(() => []);
  const [quals, sites, centers] = await Promise.all([get('/api/v1/qualifications'), get('/api/v1/sites'), get('/api/v1/centers')]);
  const n = {qual: {}, site: {}, tz: {}, center: {}, quals: quals || [], sites: sites || [], centers: centers || []};
  for (const q of n.quals) n.qual[q.code] = q.name;
  for (const s of n.sites) { n.site[s.id] = s.name || s.id; n.tz[s.id] = s.time_zone || 'Europe/Moscow'; }
  for (const c of n.centers) n.center[c.id] = c.name || c.id;
  NS._names = n;
  return n;
};
NS.qualName = (n, code) => (n.qual[code] ? n.qual[code] + ' (' + code + ')' : code);

// NS.paginate shows items a page at a time in tbody through row(item), with
// a pager after the table; empty is what to say when there is nothing.
NS.paginate = (tbody, items, row, opts) => {
  const o = Object.assign({size: 20, empty: ''}, opts || {});
  const table = tbody.closest('table');
  let pager = table.nextElementSibling;
  if (!pager || !pager.classList.contains('pager')) {
    pager = NS.el('nav', {class: 'pager', 'aria-label': NS.t('Страницы')});
    table.after(pager);
  }
  let page = 0;
  const pages = Math.max(1, Math.ceil(items.length / o.size));
  const show = () => {
    tbody.textContent = '';
    if (!items.length) {
      const cols = table.querySelectorAll('thead th').length || 1;
      tbody.append(NS.el('tr', {class: 'empty-row'}, NS.el('td', {colspan: String(cols), class: 'muted'}, o.empty)));
    }
    for (const it of items.slice(page * o.size, (page + 1) * o.size)) {
      const r = row(it);
      if (Array.isArray(r)) tbody.append(...r); else tbody.append(r);
    }
    pager.textContent = '';
    if (pages > 1) {
      const prev = NS.el('button', {type: 'button', class: 'btn small light prev'}, NS.t('Назад'));
      const next = NS.el('button', {type: 'button', class: 'btn small light next'}, NS.t('Вперёд'));
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      prev.addEventListener('click', () => { page--; show(); });
      next.addEventListener('click', () => { page++; show(); });
      pager.append(prev, ' ', NS.el('span', {class: 'muted', 'aria-live': 'polite'}, NS.t('стр.') + ' ' + (page + 1) + ' ' + NS.t('из') + ' ' + pages), ' ', next);
    }
  };
  show();
};
// NS.field returns a labelled input (or select/textarea when attrs.tag says
// so) as [label, control].
NS.field = (id, label, attrs) => {
  const a = Object.assign({id}, attrs || {});
  const tag = a.tag || 'input';
  delete a.tag;
  if (tag === 'input' && !a.type) a.type = 'text';
  const options = a.options;
  delete a.options;
  const c = NS.el(tag, a);
  for (const [v, t] of options || []) c.append(NS.el('option', {value: v}, t));
  return [NS.el('label', {for: id}, NS.t(label)), c];
};
// NS.busy disables a button while fn runs, and shows fn's error in err.
NS.busy = async (btn, err, fn) => {
  if (err) err.textContent = '';
  if (btn) btn.disabled = true;
  try { return await fn(); } catch (e) { if (err) err.textContent = e.message; else throw e; } finally { if (btn) btn.disabled = false; }
};
// NS.openDocument fetches a document with the session token and shows it:
// an image beside target, anything else downloaded as a file. The
// document's id, not the person's data, is all the URL carries.
NS.openDocument = async (doc, target) => {
  const resp = await fetch('/api/v1/documents/' + encodeURIComponent(doc.id), {headers: {Authorization: 'Bearer ' + NS.token()}});
  if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error || resp.statusText);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  if (target && blob.type.startsWith('image/')) {
    target.textContent = '';
    target.append(NS.el('img', {src: url, alt: NS.t('Скан документа') + ': ' + (doc.filename || doc.kind), class: 'doc-scan'}));
    return url;
  }
  const a = NS.el('a', {href: url, download: doc.filename || doc.id});
  document.body.append(a); a.click(); a.remove();
  return url;
};
NS.docKinds = {passport: 'паспорт', snils: 'СНИЛС', diploma: 'диплом', application: 'заявление', consent: 'согласие', other: 'другое', photo: 'фото'};

// NS.serverPager shows the pager of a list the API pages ({total, limit,
// offset}) after table; go(offset) loads another page.
NS.serverPager = (table, page, go) => {
  let pager = table.nextElementSibling;
  if (!pager || !pager.classList.contains('pager')) {
    pager = NS.el('nav', {class: 'pager', 'aria-label': NS.t('Страницы')});
    table.after(pager);
  }
  pager.textContent = '';
  const pages = Math.max(1, Math.ceil(page.total / page.limit)), at = Math.floor(page.offset / page.limit);
  table.dataset.total = String(page.total);
  if (pages <= 1) return;
  const prev = NS.el('button', {type: 'button', class: 'btn small light prev'}, NS.t('Назад'));
  const next = NS.el('button', {type: 'button', class: 'btn small light next'}, NS.t('Вперёд'));
  prev.disabled = at === 0;
  next.disabled = at >= pages - 1;
  prev.addEventListener('click', () => go(Math.max(0, page.offset - page.limit)));
  next.addEventListener('click', () => go(page.offset + page.limit));
  pager.append(prev, ' ', NS.el('span', {class: 'muted', 'aria-live': 'polite'}, NS.t('стр.') + ' ' + (at + 1) + ' ' + NS.t('из') + ' ' + pages), ' ', next);
};
