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
    const err = new Error((data && data.error) || resp.statusText || String(resp.status));
    err.status = resp.status;
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
NS.fmtTime = (ms) => new Date(ms).toLocaleTimeString('ru-RU', {hour: '2-digit', minute: '2-digit', second: '2-digit'});
NS.fmtDate = (ms) => new Date(ms).toLocaleString('ru-RU', {day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit'});
NS.logout = () => { sessionStorage.clear(); location.href = '/ui/'; };
