/* tsunagu.js: the tsunagu web tag. No dependencies; speaks the Segment-spec ingest API.
 *
 *   <script src="https://YOUR-TSUNAGU/tag.js?key=WRITE_KEY" async></script>
 *
 * Page views are tracked automatically; then tsunagu.track(name, props),
 * tsunagu.identify(userId, traits), tsunagu.page(name, props). Calls made before the tag
 * loads are queued by the snippet (window.tsunagu = window.tsunagu || [] ...) and replayed.
 */
(function (w, d) {
  "use strict";
  var VERSION = "0.1.0";
  var cfg = w.__tsunagu_config || {};
  var prior = w.tsunagu;
  if (prior && prior.loaded) return;
  var script = d.currentScript || (function () {
    var s = d.getElementsByTagName("script");
    for (var i = s.length - 1; i >= 0; i--) if (/\/tag\.js(\?|$)/.test(s[i].src)) return s[i];
  })();
  var endpoint = (cfg.endpoint || (script ? script.src.replace(/\/tag\.js.*$/, "") : "")).replace(/\/$/, "");
  var key = cfg.key || (prior && prior.key) || (script && (script.src.match(/[?&]key=([^&]+)/) || [])[1]);
  var FLUSH_MS = cfg.flushInterval || 100;   // small: a tag install is checked live
  var MAX_BATCH = 50;
  var STORE = "tsg_queue";
  var queue = [];
  var timer = null;
  var retries = 0;

  function cookie(name, value) {
    if (value === undefined) {
      var m = d.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
      return m ? decodeURIComponent(m[1]) : null;
    }
    d.cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=63072000; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }
  function local(name, value) {
    try {
      if (value === undefined) return w.localStorage.getItem(name);
      if (value === null) w.localStorage.removeItem(name); else w.localStorage.setItem(name, value);
    } catch (e) { return null; }
  }
  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }
  // One anonymous id per browser for the whole site (first-party cookie, kept in
  // localStorage too so a cleared cookie does not split the person).
  var anonymousId = cookie("tsg_aid") || local("tsg_aid") || uuid();
  cookie("tsg_aid", anonymousId);
  local("tsg_aid", anonymousId);
  var userId = local("tsg_uid") || null;

  function campaign() {
    var q = location.search, c = {}, found = false;
    ["source", "medium", "campaign", "term", "content"].forEach(function (k) {
      var m = q.match(new RegExp("[?&]utm_" + k + "=([^&]*)"));
      if (m) { c[k === "campaign" ? "name" : k] = decodeURIComponent(m[1].replace(/\+/g, " ")); found = true; }
    });
    return found ? c : null;
  }
  function pageInfo() {
    return { url: location.href, path: location.pathname, referrer: d.referrer, title: d.title, search: location.search };
  }
  function context() {
    var c = {
      channel: "web",
      library: { name: "tsunagu.js", version: VERSION },
      page: pageInfo(),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      screen: { width: w.screen && w.screen.width, height: w.screen && w.screen.height }
    };
    var camp = campaign();
    if (camp) c.campaign = camp;
    return c;
  }
  function enqueue(msg) {
    msg.messageId = uuid();
    msg.anonymousId = anonymousId;
    if (userId) msg.userId = userId;
    msg.timestamp = new Date().toISOString();
    msg.context = msg.context || context();
    queue.push(msg);
    save();
    schedule(FLUSH_MS);
  }
  function save() { local(STORE, queue.length ? JSON.stringify(queue.slice(0, 500)) : null); }
  function schedule(ms) {
    if (!timer) timer = setTimeout(function () { timer = null; flush(); }, ms);
  }
  function body(items) {
    return JSON.stringify({ batch: items, writeKey: key, sentAt: new Date().toISOString() });
  }
  // text/plain keeps the POST a "simple" CORS request: no preflight before each batch.
  function flush() {
    if (!queue.length || !key) return;
    var items = queue.slice(0, MAX_BATCH);
    var done = function (ok) {
      if (ok) {
        queue = queue.slice(items.length);
        retries = 0;
        save();
        if (queue.length) schedule(0);
      } else {
        retries = Math.min(retries + 1, 8);
        schedule(Math.min(60000, 500 * Math.pow(2, retries)) * (0.5 + Math.random()));
      }
    };
    try {
      fetch(endpoint + "/v1/batch", { method: "POST", body: body(items), keepalive: true,
        headers: { "Content-Type": "text/plain" }, credentials: "omit" })
        .then(function (r) { done(r.status < 500 && r.status !== 429); }, function () { done(false); });
    } catch (e) { done(false); }
  }
  // The page is going away: hand what is left to the browser, which sends it even after
  // the page is gone. A beacon never says whether it arrived, so the events stay stored
  // and the next page sends them again; the server drops the copies by messageId.
  function beacon() {
    if (!queue.length || !key || !navigator.sendBeacon) return;
    navigator.sendBeacon(endpoint + "/v1/batch", new Blob([body(queue.slice(0, MAX_BATCH))], { type: "text/plain" }));
  }
  w.addEventListener("pagehide", beacon);
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") beacon(); });

  var api = {
    loaded: true,
    VERSION: VERSION,
    key: key,
    track: function (event, properties) { enqueue({ type: "track", event: event, properties: properties || {} }); },
    page: function (name, properties) {
      var p = pageInfo();
      if (properties) for (var k in properties) p[k] = properties[k];
      enqueue({ type: "page", name: name || d.title, properties: p });
    },
    identify: function (id, traits) {
      if (id && typeof id === "object") { traits = id; id = null; }
      if (id) { userId = String(id); local("tsg_uid", userId); }
      enqueue({ type: "identify", traits: traits || {} });
    },
    reset: function () {
      userId = null; local("tsg_uid", null);
      anonymousId = uuid(); cookie("tsg_aid", anonymousId); local("tsg_aid", anonymousId);
    },
    anonymousId: function () { return anonymousId; },
    flush: flush
  };
  // Events a previous page could not send.
  try { queue = JSON.parse(local(STORE) || "[]"); } catch (e) { queue = []; }
  w.tsunagu = api;
  var pending = Array.isArray(prior) ? prior : [];
  if (cfg.autoPage !== false) api.page();
  for (var i = 0; i < pending.length; i++) {
    var call = pending[i];
    if (call && api[call[0]]) api[call[0]].apply(api, call[1] || []);
  }
  if (queue.length) schedule(0);
})(window, document);
