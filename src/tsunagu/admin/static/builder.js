// The segment builder: a rule as a tree of conditions and as JSON, a live count and a
// sample of members on every change, and the preview's warnings (names the workspace never
// saw) on the condition they concern, each suggestion a click away (the page's own script;
// no libraries).
(function () {
  "use strict";
  var root = document.querySelector(".builder");
  if (!root) return;
  var data = JSON.parse(document.getElementById("builder-data").textContent);
  var L = JSON.parse(document.getElementById("builder-labels").textContent);
  var V = data.vocabulary;
  var csrf = root.getAttribute("data-csrf");
  var rule = data.rule;
  var tree = document.getElementById("rule-tree");
  var jsonBox = document.getElementById("rule-json");
  var jsonError = document.getElementById("json-error");
  var countEl = document.getElementById("live-count");
  var sampleEl = document.getElementById("sample");
  var errorsEl = document.getElementById("rule-errors");
  var warningsEl = document.getElementById("rule-warnings");
  var EVENTS = V.events.map(function (e) { return e.name; });
  var TRACKED = EVENTS.filter(function (n) { return n.charAt(0) !== "$"; });
  var VIEWS = { $page: L.page_views, $screen: L.screen_views };
  var nodes = {}; // rule path (rule.all[1]) -> the node object drawn there
  var drawn = {}; // rule path -> its element
  var shownWarnings = [];
  var NUMERIC = ["gt", "gte", "lt", "lte"];
  var COUNT_OPS = ["gte", "gt", "eq", "lte", "lt"];

  // -- small DOM helpers ------------------------------------------------------------------
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function select(options, value, onchange, attrs) {
    var s = el("select", attrs || {});
    options.forEach(function (o) {
      var pair = Array.isArray(o) ? o : [o, o];
      var opt = el("option", { value: pair[0], text: pair[1] });
      if (String(pair[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    return s;
  }
  function input(value, onchange, attrs) {
    var i = el("input", attrs || {});
    i.value = value === undefined || value === null ? "" : value;
    i.addEventListener("input", function () { onchange(i.value); });
    return i;
  }
  function datalist(id, values) {
    if (document.getElementById(id)) return;
    var d = el("datalist", { id: id });
    values.forEach(function (v) {
      d.appendChild(el("option", Array.isArray(v) ? { value: v[0], label: v[1] } : { value: v }));
    });
    document.body.appendChild(d);
  }
  function counted(n) { return L.events_count.replace("{n}", Number(n).toLocaleString()); }
  // the events seen, the most frequent first, page views named as rules name them ($page)
  datalist("dl-events", V.events.map(function (e) {
    return [e.name, (VIEWS[e.name] ? VIEWS[e.name] + " · " : "") + counted(e.count)];
  }));
  datalist("dl-fields", V.fields);
  datalist("dl-traits", V.traits);

  // -- reading values the way the rule language wants them ---------------------------------
  function typed(op, text) {
    if (NUMERIC.indexOf(op) >= 0) return text === "" ? 0 : Number(text);
    if (op === "in") return text.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
    return text;
  }
  function shown(value) {
    if (Array.isArray(value)) return value.join(", ");
    return value === undefined || value === null ? "" : String(value);
  }
  function comparison(node, key) {
    // op + value controls for a node that compares (trait, data, computed)
    var wrap = el("span", { class: "cmp" });
    var valueBox = input(shown(node.value), function (t) { node.value = typed(node.op || "eq", t); changed(); },
      { class: "value", placeholder: L.value, "data-field": "value" });
    var opSel = select(V.ops, node.op || "eq", function (op) {
      node.op = op;
      if (op === "exists" || op === "not_exists") delete node.value;
      else node.value = typed(op, valueBox.value);
      valueBox.hidden = op === "exists" || op === "not_exists";
      changed();
    }, { "data-field": "op" });
    valueBox.hidden = node.op === "exists" || node.op === "not_exists";
    wrap.appendChild(opSel);
    wrap.appendChild(valueBox);
    return wrap;
  }

  // -- one node ---------------------------------------------------------------------------
  function kindOf(node) {
    var kinds = ["all", "any", "not", "did", "trait", "data", "computed", "segment"];
    for (var i = 0; i < kinds.length; i++) if (node && Object.prototype.hasOwnProperty.call(node, kinds[i])) return kinds[i];
    return "other";
  }
  function fresh(kind) {
    if (kind === "did") return { did: TRACKED.indexOf("buy") >= 0 ? "buy" : (TRACKED[0] || EVENTS[0] || "buy"), within_days: 30 };
    if (kind === "trait") return { trait: V.traits[0] || "member_rank", op: "eq", value: "" };
    if (kind === "data") return { data: V.fields[0] || "buy", stat: "count", window: "all_time", op: "gte", value: 1 };
    if (kind === "computed") return { computed: V.computed[0] || "", op: "exists" };
    if (kind === "segment") return { segment: V.segments[0] || "" };
    if (kind === "group") return { any: [{ did: fresh("did").did }] };
    return {};
  }

  function condition(node) {
    var kind = kindOf(node);
    var row = el("span", { class: "fields" });
    if (kind === "did") {
      row.appendChild(input(node.did, function (v) { node.did = v; changed(); }, { list: "dl-events", class: "name", "data-field": "did", "aria-label": L.cond_did }));
      row.appendChild(select([["", L.any_channel]].concat(V.channels), node.channel || "", function (v) {
        if (v) node.channel = v; else delete node.channel; changed();
      }, { "data-field": "channel" }));
      row.appendChild(input(node.within_days, function (v) {
        var n = parseInt(v, 10);
        if (n > 0) node.within_days = n; else delete node.within_days; changed();
      }, { type: "number", min: 1, class: "days", placeholder: L.all_time, title: L.within_days, "data-field": "within_days" }));
      row.appendChild(el("span", { class: "muted", text: L.within_days }));
      var count = node.count || { op: "gte", value: 1 };
      row.appendChild(select(COUNT_OPS, count.op || "gte", function (v) {
        node.count = { op: v, value: (node.count && node.count.value !== undefined) ? node.count.value : 1 }; changed();
      }, { "data-field": "count.op" }));
      row.appendChild(input(count.value === undefined ? 1 : count.value, function (v) {
        var n = parseInt(v, 10);
        node.count = { op: (node.count && node.count.op) || "gte", value: isNaN(n) ? 1 : n };
        if (node.count.op === "gte" && node.count.value === 1) delete node.count;
        changed();
      }, { type: "number", min: 0, class: "days", "data-field": "count.value" }));
      row.appendChild(el("span", { class: "muted", text: L.times }));
      var where = Object.keys(node.where || {}).map(function (k) { return k + "=" + node.where[k]; }).join(", ");
      row.appendChild(input(where, function (v) {
        var w = {};
        v.split(",").forEach(function (pair) {
          var i = pair.indexOf("=");
          if (i > 0) w[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
        });
        if (Object.keys(w).length) node.where = w; else delete node.where;
        changed();
      }, { class: "where", placeholder: L.where, "data-field": "where" }));
    } else if (kind === "trait") {
      row.appendChild(input(node.trait, function (v) { node.trait = v; changed(); }, { list: "dl-traits", class: "name", "data-field": "trait", "aria-label": L.cond_trait }));
      row.appendChild(comparison(node));
    } else if (kind === "data") {
      row.appendChild(input(node.data, function (v) { node.data = v; changed(); }, { list: "dl-fields", class: "name", "data-field": "data", "aria-label": L.cond_data }));
      row.appendChild(select(V.stats, node.stat || "count", function (v) { node.stat = v; changed(); }, { "data-field": "stat" }));
      row.appendChild(select(V.windows, node.window || "all_time", function (v) { node.window = v; changed(); }, { "data-field": "window" }));
      row.appendChild(comparison(node));
    } else if (kind === "computed") {
      row.appendChild(select(V.computed, node.computed, function (v) { node.computed = v; changed(); }, { "data-field": "computed", "aria-label": L.cond_computed }));
      row.appendChild(comparison(node));
    } else if (kind === "segment") {
      row.appendChild(el("span", { class: "muted", text: L.in_segment }));
      row.appendChild(select(V.segments, node.segment, function (v) { node.segment = v; changed(); }, { "data-field": "segment" }));
    } else {
      row.appendChild(el("code", { text: JSON.stringify(node) }));
    }
    return row;
  }

  // render(node, replace, depth, path): replace(newNode) swaps this node in its parent (null
  // removes it); path is the node's place in the rule as the server names it (rule.all[1])
  function render(node, replace, depth, path) {
    var negated = kindOf(node) === "not";
    var inner = negated ? node.not : node;
    var at = negated ? path + ".not" : path;
    nodes[at] = inner;
    function setInner(n) { if (negated) { node.not = n; replace(node); } else replace(n); }
    var kind = kindOf(inner);
    if (kind === "all" || kind === "any") {
      var list = inner[kind];
      var box = el("div", { class: "group" + (negated ? " negated" : ""), "data-kind": "group", "data-path": at });
      drawn[at] = box;
      var head = el("div", { class: "group-head" });
      head.appendChild(select([["all", L.match_all], ["any", L.match_any]], kind, function (k) {
        var n = {}; n[k] = list; setInner(n); redraw();
      }, { "data-field": "combine" }));
      if (depth > 0) head.appendChild(notToggle(node, negated, replace));
      if (depth > 0) head.appendChild(removeButton(function () { replace(null); }));
      box.appendChild(head);
      var items = el("div", { class: "items" });
      list.forEach(function (child, i) {
        items.appendChild(render(child, function (n) {
          if (n === null) list.splice(i, 1); else list[i] = n;
          if (!list.length) list.push(fresh("did"));
          changed(); if (n === null) redraw();
        }, depth + 1, at + "." + kind + "[" + i + "]"));
      });
      box.appendChild(items);
      var adder = el("div", { class: "adder" });
      var types = [["did", L.cond_did], ["trait", L.cond_trait], ["data", L.cond_data]];
      if (V.computed.length) types.push(["computed", L.cond_computed]);
      if (V.segments.length) types.push(["segment", L.cond_segment]);
      var pick = select(types, "did", function () {}, { "data-field": "add-type", "aria-label": L.add_condition });
      adder.appendChild(pick);
      adder.appendChild(el("button", { type: "button", class: "add", "data-action": "add-condition", text: "＋ " + L.add_condition,
        onclick: function () { list.push(fresh(pick.value)); changed(); redraw(); } }));
      adder.appendChild(el("button", { type: "button", class: "add", "data-action": "add-group", text: "＋ " + L.add_group,
        onclick: function () { list.push(fresh("group")); changed(); redraw(); } }));
      box.appendChild(adder);
      return box;
    }
    var labels = { did: L.cond_did, trait: L.cond_trait, data: L.cond_data, computed: L.cond_computed, segment: L.cond_segment };
    var rowEl = el("div", { class: "cond" + (negated ? " negated" : ""), "data-kind": kind, "data-path": at }, [
      el("span", { class: "kind badge", text: labels[kind] || L.cond_other }),
      condition(inner),
    ]);
    if (depth > 0) rowEl.appendChild(notToggle(node, negated, replace));
    if (depth > 0) rowEl.appendChild(removeButton(function () { replace(null); }));
    drawn[at] = rowEl;
    return rowEl;
  }
  function notToggle(node, negated, replace) {
    var box = el("input", { type: "checkbox", "data-field": "not" });
    box.checked = negated;
    box.addEventListener("change", function () { replace(box.checked ? { not: node } : node.not); redraw(); });
    return el("label", { class: "not" }, [box, document.createTextNode(" " + L.exclude)]);
  }
  function removeButton(fn) {
    return el("button", { type: "button", class: "remove", title: L.remove, "aria-label": L.remove, text: "×",
      onclick: fn, "data-action": "remove" });
  }

  function redraw() {
    tree.innerHTML = "";
    nodes = {};
    drawn = {};
    tree.appendChild(render(rule, function (n) { rule = n || { all: [fresh("did")] }; changed(); redraw(); }, 0, "rule"));
    var k = kindOf(rule);
    if (k !== "all" && k !== "any") {
      // a single condition: adding another makes it a group
      tree.appendChild(el("button", { type: "button", class: "add", "data-action": "add-condition",
        text: "＋ " + L.add_condition, onclick: function () { rule = { all: [rule, fresh("did")] }; changed(); redraw(); } }));
    }
  }

  // -- the JSON view, the live count ---------------------------------------------------------
  var timer = null;
  var asked = 0;
  function changed(fromJson) {
    if (!fromJson) {
      jsonBox.value = JSON.stringify(rule, null, 2);
      jsonError.hidden = true;
    }
    countEl.classList.add("stale");
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  }
  function showErrors(list) {
    errorsEl.innerHTML = "";
    (list || []).forEach(function (e) {
      errorsEl.appendChild(el("li", { text: (e.field ? e.field + ": " : "") + e.reason }));
    });
    errorsEl.hidden = !(list && list.length);
  }
  // -- warnings: names the workspace never saw, on the condition they concern -----------------
  function warningText(w) {
    var key = "warn_" + w.kind + (w.event && (w.kind === "unknown_channel" || w.kind === "unknown_store") ? "_on" : "");
    var text = L[key] || w.message;
    return text.replace("{name}", w.name).replace("{event}", w.event || "");
  }
  function owner(path) {
    // the drawn node a warning's path is in: the longest node path it starts with
    var best = null;
    Object.keys(nodes).forEach(function (p) {
      if ((path === p || path.indexOf(p + ".") === 0) && (best === null || p.length > best.length)) best = p;
    });
    return best;
  }
  function useSuggestion(at, w, suggestion) {
    var node = nodes[at];
    var field = w.path.slice(at.length + 1);
    var m = /^value\[(\d+)\]$/.exec(field);
    if (field.indexOf("where.") === 0) {
      var key = field.slice(6);
      if (w.kind === "unknown_property") {
        var renamed = {};
        Object.keys(node.where).forEach(function (k) { renamed[k === key ? suggestion : k] = node.where[k]; });
        node.where = renamed;
      } else {
        node.where[key] = suggestion;
      }
    } else if (m) {
      node.value[Number(m[1])] = suggestion;
    } else {
      node[field] = suggestion;
    }
    redraw();
    changed();
  }
  function warningItem(w, at) {
    var li = el("li", { class: "rule-warning", "data-kind": w.kind, "data-path": w.path, title: w.message }, [
      el("span", { class: "warn-text", text: (at === null ? w.path + ": " : "") + warningText(w) }),
    ]);
    if (w.suggestions.length && at !== null) {
      var pick = el("span", { class: "suggestions" }, [el("span", { class: "muted", text: L.did_you_mean + ":" })]);
      w.suggestions.forEach(function (s) {
        pick.appendChild(el("button", { type: "button", class: "suggest", "data-action": "use-suggestion",
          "data-suggestion": s, text: s + (VIEWS[s] ? "（" + VIEWS[s] + "）" : ""),
          onclick: function () { useSuggestion(at, w, s); } }));
      });
      li.appendChild(pick);
    } else if (w.suggestions.length) {
      li.appendChild(el("span", { class: "muted", text: " " + L.did_you_mean + ": " + w.suggestions.join(", ") }));
    }
    return li;
  }
  function showWarnings(list) {
    shownWarnings = list || [];
    Array.prototype.forEach.call(tree.querySelectorAll("ul.warnings"), function (u) { u.remove(); });
    Array.prototype.forEach.call(tree.querySelectorAll(".warned"), function (e) { e.classList.remove("warned"); });
    warningsEl.innerHTML = "";
    shownWarnings.forEach(function (w) {
      var at = owner(w.path);
      var box = at === null ? null : drawn[at];
      if (!box) { warningsEl.appendChild(warningItem(w, null)); return; }
      var list = box.querySelector(":scope > ul.warnings");
      if (!list) {
        list = el("ul", { class: "warnings" });
        var head = box.querySelector(":scope > .group-head");
        if (head) head.after(list); else box.appendChild(list);
      }
      list.appendChild(warningItem(w, at));
      box.classList.add("warned");
    });
    warningsEl.hidden = !warningsEl.children.length;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    }).then(function (r) {
      if (r.status === 401) { window.location = "/ui/login"; return new Promise(function () {}); } // session over
      return r.json().then(function (b) { return { ok: r.ok, body: b }; });
    });
  }
  // the errors of a refusal in the one error shape: each field's, or the message alone
  function errorsOf(body) {
    var err = (body && body.error) || {};
    return err.errors && err.errors.length ? err.errors : [{ field: "", reason: err.message || String(body) }];
  }
  function preview() {
    var n = ++asked;
    var sent = JSON.stringify(rule);
    post("/ui/segments/preview", { rule: rule }).then(function (res) {
      if (n !== asked) return; // a newer rule was sent meanwhile
      countEl.classList.remove("stale");
      if (!res.ok) {
        countEl.textContent = "—";
        countEl.setAttribute("data-count", "");
        sampleEl.innerHTML = "";
        showErrors(errorsOf(res.body));
        showWarnings([]);
        return;
      }
      showErrors([]);
      showWarnings(res.body.warnings || []);
      countEl.textContent = res.body.count.toLocaleString();
      countEl.setAttribute("data-count", res.body.count);
      countEl.setAttribute("data-rule", sent);
      document.getElementById("evaluated-on").textContent = res.body.evaluated_on;
      sampleEl.innerHTML = "";
      res.body.sample.forEach(function (p) {
        var label = p.name || p.user_id || p.person_id;
        sampleEl.appendChild(el("li", {}, [
          el("a", { href: "/ui/people/" + encodeURIComponent(p.person_id), text: label }),
          p.user_id && p.name ? el("span", { class: "muted mono", text: " " + p.user_id }) : null,
        ]));
      });
    });
  }
  jsonBox.addEventListener("input", function () {
    try {
      rule = JSON.parse(jsonBox.value);
      jsonError.hidden = true;
      redraw();
      changed(true);
    } catch (e) {
      jsonError.textContent = L.invalid_json + ": " + e.message;
      jsonError.hidden = false;
    }
  });

  // -- save, delete ----------------------------------------------------------------------------
  var status = document.getElementById("save-status");
  document.getElementById("save").addEventListener("click", function () {
    status.textContent = L.saving;
    post("/ui/segments/save", {
      name: document.getElementById("seg-name").value.trim(),
      description: document.getElementById("seg-description").value.trim(),
      rule: rule,
    }).then(function (res) {
      if (res.ok) { window.location = res.body.redirect; return; }
      status.textContent = "";
      showErrors(errorsOf(res.body));
    });
  });
  var del = document.querySelector("form.delete");
  if (del) del.addEventListener("submit", function (ev) {
    if (!window.confirm(del.getAttribute("data-confirm"))) ev.preventDefault();
  });

  redraw();
  changed();
})();
