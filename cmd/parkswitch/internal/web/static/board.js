// The park board, live: the event stream says that an orbit changed and
// the board's rows are fetched again (rendered by the server, like the
// page); between changes the times count on the browser's clock, set to
// the server's. Without this script the board is a page to reload.
'use strict';
(() => {
  const board = document.getElementById('board');
  if (!board) return;
  const live = document.getElementById('live');
  const types = ['parked', 'retrieved', 'ringback.started', 'ringback.answered', 'abandoned', 'parked.hungup'];
  let skew = 0; // the server's clock minus this one's, in ms
  let fetching = false;
  let again = false;

  // fmt renders ms as the server does: "1 h 05 min", "4 min 09 s", "9 s".
  const pad = (n) => String(n).padStart(2, '0');
  function fmt(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    if (h > 0) return `${h} h ${pad(m)} min`;
    if (m > 0) return `${m} min ${pad(sec)} s`;
    return `${sec} s`;
  }

  // tick runs four times a second, so that a second shown is at most a
  // quarter late whatever its phase; it writes only the cells that change.
  const put = (td, text) => { if (td.textContent !== text) td.textContent = text; };
  function tick() {
    const now = Date.now() + skew;
    for (const td of board.querySelectorAll('[data-since]')) {
      put(td, fmt(now - Number(td.dataset.since)));
    }
    for (const td of board.querySelectorAll('[data-until]')) {
      const left = Number(td.dataset.until) - now;
      put(td, left > 0 ? fmt(left) : 'ringing back now');
    }
  }

  function adopt(rows) {
    const at = Number(rows.dataset.now);
    if (at) skew = at - Date.now();
    board.replaceChildren(rows);
    tick();
  }

  // refresh fetches the rows; changes that arrive meanwhile fold into one
  // more fetch after it.
  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const res = await fetch(board.dataset.rows, {
        credentials: 'same-origin', cache: 'no-store', signal: AbortSignal.timeout(10000),
      });
      if (res.status === 401) {
        location.assign('/signin?next=' + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (res.ok) {
        const t = document.createElement('template');
        t.innerHTML = await res.text();
        const rows = t.content.querySelector('.rows');
        if (rows) adopt(rows);
      }
    } catch (e) {
      // The next change, or the minute's refresh, tries again.
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  let wait = 1000;
  function connect() {
    const es = new EventSource(board.dataset.events);
    es.onopen = () => {
      wait = 1000;
      live.hidden = false;
      refresh(); // what changed while the stream was down
    };
    for (const t of types) es.addEventListener(t, refresh);
    es.onerror = () => {
      live.hidden = true;
      if (es.readyState === EventSource.CLOSED) { // refused: not reconnecting by itself
        setTimeout(() => { refresh(); connect(); }, wait);
        wait = Math.min(wait * 2, 30000);
      }
    };
  }

  const first = board.querySelector('.rows');
  if (first && Number(first.dataset.now)) skew = Number(first.dataset.now) - Date.now();
  tick();
  setInterval(tick, 250);
  setInterval(refresh, 60000);
  connect();
})();
