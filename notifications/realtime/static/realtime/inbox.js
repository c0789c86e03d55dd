// The inbox page: the list over REST, live events over /ws/notifications/, marks over REST.
// Reconnects by itself with exponential backoff and full jitter, and asks for what it missed.
(function () {
  "use strict";
  var TOKEN_KEY = "notifications.token";
  // Reconnect waits: full jitter over 0.5 s doubling, capped at 5 s for the first minute offline
  // (a restart or a short outage: everyone is back within seconds of the server) and at 30 s
  // after it (a long outage: a fleet of clients must not hammer whatever answers meanwhile).
  var BASE_BACKOFF_MS = 500, SHORT_OUTAGE_MAX_BACKOFF_MS = 5000, SHORT_OUTAGE_MS = 60000, MAX_BACKOFF_MS = 30000;
  var token = takeToken();
  var items = new Map();  // id -> notification
  var list = document.getElementById("notifications");
  var countBadge = document.getElementById("unread-count");
  var state = document.getElementById("connection");
  var problem = document.getElementById("problem");
  var attempts = 0, offlineSince = null, newestId = null, socket = null, stopped = false;

  function takeToken() {
    var match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);  // out of sight and history
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function csrfToken() {
    var match = /(?:^|; )csrftoken=([^;]+)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function api(method, path) {
    var headers = {"Accept": "application/json"};
    if (token) headers["Authorization"] = "Bearer " + token;
    else headers["X-CSRFToken"] = csrfToken();
    return fetch(path, {method: method, headers: headers, credentials: "same-origin"}).then(function (response) {
      if (response.status === 401 || response.status === 403) { fail("Your session has ended: reopen the inbox from the app."); throw new Error("unauthenticated"); }
      if (!response.ok) throw new Error(method + " " + path + ": " + response.status);
      return response.json();
    });
  }

  function fail(text) { problem.textContent = text; problem.hidden = false; }
  function setState(name, text) { state.dataset.state = name; state.textContent = text; }
  function setCount(count) { countBadge.textContent = count; countBadge.dataset.count = count; }

  function render(n) {
    var li = document.getElementById("n-" + n.id) || document.createElement("li");
    li.id = "n-" + n.id;
    li.dataset.id = n.id;
    li.className = (n.read_at ? "read" : "unread") + " priority-" + n.priority;
    li.innerHTML = "";
    var title = document.createElement("div"); title.className = "title"; title.textContent = n.title;
    var body = document.createElement("div"); body.className = "message"; body.textContent = n.message || "";
    var meta = document.createElement("div"); meta.className = "meta";
    meta.textContent = n.category + " · " + new Date(n.created_at).toLocaleString();
    li.append(title, body, meta);
    return li;
  }

  function upsert(n) {
    var known = items.get(n.id);
    items.set(n.id, Object.assign({}, known || {}, n));
    var li = render(items.get(n.id));
    if (!known) {
      // Newest first: insert before the first item created earlier.
      var after = Array.prototype.find.call(list.children, function (other) {
        return items.get(other.dataset.id).created_at < n.created_at;
      });
      list.insertBefore(li, after || null);
      if (!newestId || n.created_at >= items.get(newestId).created_at) newestId = n.id;
    }
    document.getElementById("empty").hidden = items.size > 0;
  }

  function applyStatus(message) {
    var n = items.get(message.id);
    if (!n) return;
    if (message.status === "read") n.read_at = message.at;
    if (message.status === "unread") n.read_at = null;
    if (message.status === "seen") n.seen_at = message.at;
    if (message.status === "archived") { items.delete(message.id); var li = document.getElementById("n-" + message.id); if (li) li.remove(); return; }
    render(n);
  }

  list.addEventListener("click", function (event) {
    var li = event.target.closest("li");
    if (!li || !items.has(li.dataset.id) || items.get(li.dataset.id).read_at) return;
    api("PUT", "/api/notifications/" + li.dataset.id + "/read").then(function (n) {
      upsert({id: n.id, read_at: n.read_at});
    }).catch(function (error) { console.warn(error); });
  });

  function reconnectDelay(attempts, offlineMs) {
    var cap = offlineMs < SHORT_OUTAGE_MS ? SHORT_OUTAGE_MAX_BACKOFF_MS : MAX_BACKOFF_MS;
    return Math.random() * Math.min(cap, BASE_BACKOFF_MS * Math.pow(2, attempts));
  }

  function connect() {
    if (stopped) return;
    var url = document.body.dataset.wsUrl ||
      (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/notifications/";
    var protocols = ["notifications"];
    if (token) protocols.push("bearer." + token);
    setState("connecting", attempts ? "reconnecting…" : "connecting…");
    socket = new WebSocket(url, protocols);
    socket.onopen = function () {
      setState("open", "live");
      problem.hidden = true;
      if (attempts && newestId) socket.send(JSON.stringify({type: "requestMissedNotifications", after: newestId}));
      attempts = 0;
      offlineSince = null;
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "notification") upsert(message);
      else if (message.type === "notificationStatus") applyStatus(message);
      else if (message.type === "unreadCount") setCount(message.count);
      else if (message.type === "error") console.warn("inbox:", message.code, message.message);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) { stopped = true; setState("closed", "signed out"); fail("Your session has ended: reopen the inbox from the app."); return; }
      // Full jitter: a server restart must not bring every client back in the same instant.
      if (offlineSince === null) offlineSince = Date.now();
      var delay = reconnectDelay(attempts, Date.now() - offlineSince);
      attempts += 1;
      setState("waiting", "offline, retrying in " + Math.round(delay / 100) / 10 + " s");
      setTimeout(connect, delay);
    };
  }

  api("GET", "/api/notifications/?archived=false").then(function (page) {
    page.results.slice().reverse().forEach(upsert);
  }).catch(function (error) { console.warn(error); }).then(connect);
  window.inbox = {items: items, socket: function () { return socket; }, reconnectDelay: reconnectDelay};
})();
