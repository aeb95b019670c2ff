// The Datahub upload: the file goes as the body of POST /ui/datahub/import (what the
// admin API's imports endpoint takes), with a progress bar; the answer is shown in place.
(function () {
  const form = document.getElementById("import-form");
  if (!form) return;
  const T = JSON.parse(form.dataset.texts);
  const out = document.getElementById("import-result");
  const bar = form.querySelector(".progress.upload");
  const status = form.querySelector(".status");
  const keyLabel = form.querySelector("label.key");
  const mode = form.elements.mode;
  const showKey = () => { keyLabel.hidden = mode.value !== "upsert"; };
  mode.addEventListener("change", showKey);
  showKey();

  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (n) => Number(n).toLocaleString();
  const fill = (tpl, vals) => tpl.replace(/\{(\w+)\}/g, (_, k) => esc(vals[k]));

  function render(r) {
    const rejects = r.rejects.map((j) => `<tr><td class="num">${fmt(j.line)}</td><td>${esc(j.column || T.whole_row)}</td><td>${esc(j.reason)}</td><td class="mono small">${esc(j.text.slice(0, 120))}</td></tr>`).join("");
    const hints = (r.hints || []).map((h) => `<p class="hint">${fill(T.hint, h)}</p>`).join("");
    out.innerHTML = `
      <div class="figures">
        <div class="figure"><span class="label">${esc(T.imported)}</span><strong data-test="imported">${fmt(r.rows_imported)}</strong><small class="muted">/ ${fmt(r.rows_in_source)}</small></div>
        <div class="figure ${r.rows_rejected ? "warn" : ""}"><span class="label">${esc(T.rejected)}</span><strong data-test="rejected">${fmt(r.rows_rejected)}</strong></div>
        <div class="figure"><span class="label">${esc(T.rows_total)}</span><strong>${fmt(r.rows_total)}</strong><small class="muted">v${r.version}</small></div>
      </div>
      <p class="small muted">${r.encoding ? `${esc(T.read_as)}: ${esc(r.encoding)} · ` : ""}${r.columns.map((c) => esc(c.name) + " <span class='type'>" + esc(c.type) + "</span>").join(", ")}</p>
      ${hints}
      ${rejects ? `<table class="list rejects"><thead><tr><th class="num">${esc(T.line)}</th><th>${esc(T.column)}</th><th>${esc(T.reason)}</th><th>${esc(T.text)}</th></tr></thead><tbody>${rejects}</tbody></table>` : ""}
      <p><a class="button" href="/ui/datahub/${encodeURIComponent(r.table)}" data-test="open-table">${esc(T.open)} →</a></p>`;
    out.hidden = false;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    const q = new URLSearchParams({ table: form.elements.table.value.trim(), mode: mode.value, filename: file.name,
      encoding: form.elements.encoding.value, header: form.elements.header.value });
    if (mode.value === "upsert" && form.elements.key.value.trim()) q.set("key", form.elements.key.value.trim());
    if (form.elements.types.value.trim()) q.set("types", form.elements.types.value.replace(/\s*,\s*/g, ",").replace(/=/g, ":"));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/ui/datahub/import?" + q.toString());
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false;
    bar.style.setProperty("--p", "0%");
    status.textContent = T.uploading;
    out.hidden = true;
    form.querySelector("button[type=submit]").disabled = true;
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) bar.style.setProperty("--p", `${Math.round((100 * ev.loaded) / ev.total)}%`);
    };
    xhr.upload.onload = () => { bar.style.setProperty("--p", "100%"); status.textContent = T.reading; };
    xhr.onloadend = () => {
      form.querySelector("button[type=submit]").disabled = false;
      bar.hidden = true;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: shown as text */ }
      if (xhr.status === 201 || xhr.status === 200) {
        status.textContent = "";
        render(body);
        return;
      }
      const err = body && body.error;
      const fields = err && err.errors ? err.errors.map((f) => `${f.field}: ${f.reason}`).join(" · ") : (err ? err.message : xhr.responseText || xhr.statusText);
      status.textContent = "";
      out.innerHTML = `<p class="error" role="alert" data-test="error">${esc(T.failed)}: ${esc(fields)}</p>`;
      out.hidden = false;
    };
    xhr.send(file);
  });
})();
