// Accounts and organisations: NARK suspends and reactivates organisations
// (their users cannot log in meanwhile; the data stays) and accounts; an
// organisation's admin disables and enables its own users. Both lists are
// searched and paged on the server. Each organisation links to its audit
// trail, where the suspensions show.
'use strict';
Object.assign(NS.dict.en, {
  'Учётные записи и организации': 'Accounts and organisations', 'Учётные записи': 'Accounts', 'Организации': 'Organisations',
  'Код или наименование': 'Code or name', 'Вид': 'Kind', '— любой —': '— any —', 'совет': 'council', 'центр': 'center', 'площадка': 'site',
  'Найти': 'Search', 'Организация': 'Organisation', 'Учётных записей': 'Accounts', 'Состояние': 'State', 'Действие': 'Action',
  'Логин, ФИО или эл. почта': 'Login, full name or e-mail', 'Логин': 'Login', 'Роль': 'Role', 'действует': 'active',
  'приостановлена': 'suspended', 'отключена': 'disabled', 'организация приостановлена': 'organisation suspended',
  'Приостановить': 'Suspend', 'Восстановить': 'Reactivate', 'Причина приостановки': 'Reason for the suspension',
  'Укажите причину приостановки': 'Give the reason for the suspension', 'Журнал': 'Audit trail', 'администратор': 'admin',
  'Ничего не найдено. Измените запрос или очистите поле поиска.': 'Nothing found. Change the query or clear the search field.',
  'Учётных записей нет: их создаёт НАРК (nokstream user add).': 'No accounts: NARK creates them (nokstream user add).',
  'найдено': 'found', 'кем': 'by', 'Сотрудник': 'Staff member',
});
const $ = (id) => document.getElementById(id);
const st = window.accounts = {me: null, orgs: {offset: 0}, users: {offset: 0}};
const enc = encodeURIComponent;
const kinds = {council: 'совет', center: 'центр', site: 'площадка'};
const PAGE = 20;

// reasonField is a per-row input for the reason of a suspension.
function reasonField(id) {
  return NS.el('input', {type: 'text', id, class: 'reason', 'aria-label': NS.t('Причина приостановки'), placeholder: NS.t('Причина приостановки'), autocomplete: 'off'});
}

// act calls the suspension route of a row and reloads its list.
async function act(btn, errEl, path, suspended, reasonEl, reload) {
  await NS.busy(btn, errEl, async () => {
    const reason = reasonEl ? reasonEl.value.trim() : '';
    if (suspended && !reason) { reasonEl.focus(); throw new Error(NS.t('Укажите причину приостановки')); }
    await NS.api('POST', path, suspended ? {suspended, reason} : {suspended});
    await reload();
  });
}

async function loadOrgs() {
  const q = new URLSearchParams({limit: String(PAGE), offset: String(st.orgs.offset)});
  if ($('o-q').value.trim()) q.set('q', $('o-q').value.trim());
  if ($('o-kind').value) q.set('kind', $('o-kind').value);
  const page = await NS.api('GET', '/api/v1/organisations?' + q.toString());
  const tbody = document.querySelector('#orgs tbody');
  tbody.textContent = '';
  for (const o of page.organisations) {
    const id = 'or-' + o.kind + '-' + o.id;
    const state = o.suspended
      ? NS.el('span', {class: 'st-bad'}, NS.t('приостановлена') + ': ' + o.suspension.reason,
        NS.el('div', {class: 'muted'}, NS.t('кем') + ' ' + o.suspension.by + ', ' + NS.fmtDate(Date.parse(o.suspension.at))))
      : NS.el('span', {}, NS.t('действует'));
    const actions = NS.el('td', {});
    const path = '/api/v1/organisations/' + enc(o.kind) + '/' + enc(o.id) + '/suspension';
    if (st.me.role === 'nark') {
      if (o.suspended) {
        const b = NS.el('button', {type: 'button', class: 'btn small light reactivate'}, NS.t('Восстановить'));
        b.addEventListener('click', () => act(b, $('o-error'), path, false, null, loadOrgs));
        actions.append(b, ' ');
      } else {
        const r = reasonField(id);
        const b = NS.el('button', {type: 'button', class: 'btn small suspend'}, NS.t('Приостановить'));
        b.addEventListener('click', () => act(b, $('o-error'), path, true, r, loadOrgs));
        actions.append(r, ' ', b, ' ');
      }
      actions.append(NS.el('a', {href: 'audit.html?org=' + enc(o.id), class: 'audit-link'}, NS.t('Журнал')));
    }
    tbody.append(NS.el('tr', {'data-org': o.kind + ':' + o.id, 'data-suspended': String(o.suspended)},
      NS.el('td', {}, o.name, NS.el('div', {class: 'muted'}, o.id)), NS.el('td', {}, NS.t(kinds[o.kind] || o.kind)),
      NS.el('td', {}, String(o.users)), NS.el('td', {}, state), actions));
  }
  empty(tbody, page, $('o-q').value.trim() || $('o-kind').value ? 'Ничего не найдено. Измените запрос или очистите поле поиска.' : '');
  NS.serverPager(document.getElementById('orgs'), page, (offset) => { st.orgs.offset = offset; loadOrgs().catch(showError); });
}

async function loadUsers() {
  const q = new URLSearchParams({limit: String(PAGE), offset: String(st.users.offset)});
  if ($('u-q').value.trim()) q.set('q', $('u-q').value.trim());
  const page = await NS.api('GET', '/api/v1/users?' + q.toString());
  const tbody = document.querySelector('#accounts tbody');
  tbody.textContent = '';
  for (const u of page.accounts) {
    let state = NS.el('span', {}, NS.t('действует'));
    if (u.disabled) state = NS.el('span', {class: 'st-bad'}, NS.t(u.disabled_by === 'nark' ? 'приостановлена' : 'отключена'));
    else if (u.org_suspended) state = NS.el('span', {class: 'st-bad'}, NS.t('организация приостановлена'));
    const actions = NS.el('td', {});
    const path = '/api/v1/users/' + enc(u.login) + '/suspension';
    if (u.login !== st.me.login) {
      if (u.disabled) {
        const b = NS.el('button', {type: 'button', class: 'btn small light reactivate'}, NS.t('Восстановить'));
        b.addEventListener('click', () => act(b, $('u-error'), path, false, null, loadUsers));
        actions.append(b);
      } else {
        const r = reasonField('ur-' + u.login);
        const b = NS.el('button', {type: 'button', class: 'btn small suspend'}, NS.t('Приостановить'));
        b.addEventListener('click', () => act(b, $('u-error'), path, true, r, loadUsers));
        actions.append(r, ' ', b);
      }
    }
    tbody.append(NS.el('tr', {'data-login': u.login, 'data-disabled': String(u.disabled)},
      NS.el('td', {}, u.full_name || u.login, NS.el('div', {class: 'muted'},
        [u.full_name ? u.login : '', u.position, u.region, u.org_admin ? NS.t('администратор') : ''].filter(Boolean).join(' · '))),
      NS.el('td', {}, NS.t(NS.roleNames[u.role] || u.role)), NS.el('td', {}, u.org || '—'), NS.el('td', {}, state), actions));
  }
  empty(tbody, page, $('u-q').value.trim() ? 'Ничего не найдено. Измените запрос или очистите поле поиска.' : 'Учётных записей нет: их создаёт НАРК (nokstream user add).');
  NS.serverPager(document.getElementById('accounts'), page, (offset) => { st.users.offset = offset; loadUsers().catch(showError); });
}

function empty(tbody, page, what) {
  if (page.total || !what) return;
  const cols = tbody.closest('table').querySelectorAll('thead th').length;
  tbody.append(NS.el('tr', {class: 'empty-row'}, NS.el('td', {colspan: String(cols), class: 'muted'}, NS.t(what))));
}
const showError = (e) => { $('error').textContent = e.message; };

$('o-form').addEventListener('submit', (ev) => { ev.preventDefault(); st.orgs.offset = 0; loadOrgs().catch(showError); });
$('u-form').addEventListener('submit', (ev) => { ev.preventDefault(); st.users.offset = 0; loadUsers().catch(showError); });

(async () => {
  st.me = await NS.start();
  if (st.me.role === 'nark') { $('orgs-section').classList.remove('hidden'); await loadOrgs(); }
  await loadUsers();
  document.body.dataset.loaded = 'true';
})().catch(showError);
