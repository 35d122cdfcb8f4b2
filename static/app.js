// The anomalyd settings page: hash routing over the JSON API, live updates from the event
// stream. Every element is built with the DOM API, so no server text is parsed as markup.

const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "anomalyd-token";

const LAYER_NAMES = {
  "assignment-field-override": "system field override",
  "template-field-override": "healthcheck field override",
  assignment: "system setting",
  template: "healthcheck setting",
  "schema-annotation": "schema annotation",
  "engine-default": "engine default",
};

const SETTING_LABELS = [
  ["enabled", "enabled"],
  ["direction", "direction"],
  ["sensitivity", "sensitivity"],
  ["confirmationWindow", "confirmation window"],
  ["minAbsoluteDelta", "minimum change"],
  ["minRelativeDelta", "minimum relative change"],
  ["driftEnabled", "drift enabled"],
  ["driftThreshold", "drift threshold"],
  ["baselineWindow", "baseline window"],
  ["notify", "notify"],
];

// ---- DOM helpers ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function badge(state) {
  return h("span", { class: `badge ${state}` }, state);
}

function link(route, params, text) {
  return h("a", { href: route + "?" + new URLSearchParams(clean(params)) }, text);
}

function clean(params) {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return value.toFixed(Math.abs(value) >= 100 ? 0 : digits);
  }
  return String(value);
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

function fieldName(path) {
  return path.slice(path.lastIndexOf(".") + 1);
}

// ---- API ----

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `request failed with status ${status}`);
    this.status = status;
    this.details = body?.error?.details || [];
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401 && !options.retried && (await askToken())) {
    return api(path, { ...options, retried: true });
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Returns null when the endpoint does not exist on this server yet.
async function optional(path) {
  try {
    return await api(path);
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const ok = dialog.returnValue === "ok" && input.value.trim() !== "";
        if (ok) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        resolve(ok);
      },
      { once: true },
    );
    dialog.showModal();
  });
}

// ---- routing ----

const view = () => document.getElementById("view");
let rendering = 0;

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  return { path, params: Object.fromEntries(new URLSearchParams(query)) };
}

async function render() {
  const ticket = ++rendering;
  const { path, params } = parseHash();
  const routes = {
    "/": overview,
    "/system": systemView,
    "/field": fieldView,
    "/anomalies": anomaliesView,
    "/config": configView,
  };
  const page = routes[path] || notFound;
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = { overview: ["/", "/system", "/field"], anomalies: ["/anomalies"], config: ["/config"] };
    a.classList.toggle("current", current[a.dataset.nav].includes(path));
  }
  let content;
  try {
    content = await page(params);
  } catch (error) {
    content = h("div", { class: "panel notice error" }, `Could not load this view: ${error.message}`);
  }
  if (ticket !== rendering) return;
  view().replaceChildren(content);
  document.body.dataset.view = path;
}

function notFound() {
  return h("div", {}, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the systems")));
}

// ---- overview ----

function deviationText(anomaly) {
  if (anomaly.deviationUnbounded) return "∞ σ";
  if (anomaly.deviation === null) return "—";
  return `${fmt(anomaly.deviation)} σ`;
}

function baselineStatus(baseline, entry) {
  if (baseline) return `Baseline ${baselineCell(baseline)}`;
  if (entry?.learning) return `Learning: ${entry.learning.samples}/${entry.learning.required} samples`;
  return "No baseline yet";
}

function countsText(c) {
  const parts = [`${c.series} ${c.series === 1 ? "field" : "fields"}`];
  if (c.anomaly) parts.push(`${c.anomaly} ${c.anomaly === 1 ? "anomaly" : "anomalies"}`);
  if (c.suspicious) parts.push(`${c.suspicious} suspicious`);
  if (c.learning) parts.push(`${c.learning} learning`);
  return parts.join(" · ");
}

function sourceText(source) {
  if (!source) return "seen only in results";
  if (source.type === "yaml") return `defined in ${source.file}`;
  return "settings made here";
}

async function overview() {
  const { systems } = await api("/api/v1/systems");
  const cards = systems.map((sys) =>
    h(
      "a",
      { class: "card system-card", href: `#/system?name=${encodeURIComponent(sys.name)}`, "data-system": sys.name },
      h("div", {}, h("span", { class: "name" }, sys.title || sys.name), badge(sys.badge)),
      h("div", { class: "counts" }, countsText(sys.counts)),
      h("div", { class: "counts" }, sourceText(sys.source)),
    ),
  );
  return h(
    "div",
    {},
    h("h1", {}, "Systems"),
    h("p", { class: "muted" }, "What anomalyd learned for every system, from the YAML folder and from results."),
    cards.length ? h("div", { class: "grid" }, cards) : h("p", { class: "empty" }, "No systems yet: post results or add a config folder."),
  );
}

// ---- one system ----

function learningCell(series) {
  if (!series.learning) return "learned";
  const { samples, required } = series.learning;
  const pct = Math.min(100, Math.round((100 * samples) / required));
  const bar = h("span", { class: "progress" }, h("span", { "data-pct": pct }));
  bar.firstChild.style.width = `${pct}%`;
  return h("span", {}, bar, `${samples}/${required}`);
}

function baselineCell(b) {
  if (!b) return h("span", { class: "muted" }, "—");
  if (b.dominantValue !== null && b.dominantValue !== undefined && b.stdDev === 0 && b.dominantRatio !== null) {
    return `${b.dominantValue} (${Math.round(b.dominantRatio * 100)} %) · ${b.sampleCount} samples`;
  }
  return `μ ${fmt(b.mean)} · σ ${fmt(b.stdDev)} · ${b.sampleCount} samples · slope ${fmt(b.slope, 3)}`;
}

function seriesState(series) {
  const states = [series.spikeState, series.driftState];
  if (states.includes("anomaly")) return "anomaly";
  if (states.includes("suspicious")) return "suspicious";
  return series.learning ? "learning" : "ok";
}

async function systemView({ name }) {
  const sys = await api(`/api/v1/systems/${encodeURIComponent(name)}`);
  const sections = [];
  for (const hc of sys.healthchecks) {
    const rows = hc.series.map((series) =>
      h(
        "tr",
        {},
        h("td", {}, link("#/field", { system: sys.name, healthcheck: hc.name, field: series.field, environment: series.environment }, fieldName(series.field)), h("div", { class: "layer mono" }, series.field)),
        h("td", {}, series.environment || h("span", { class: "muted" }, "—")),
        h("td", { class: "num" }, fmt(series.lastValue)),
        h("td", { class: "num" }, baselineCell(series.baseline)),
        h("td", {}, badge(seriesState(series))),
        h("td", {}, learningCell(series)),
      ),
    );
    const table = rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["Field", "Env", "Last value", "Baseline", "State", "Learning"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No results yet for this healthcheck.");
    sections.push(
      h("section", { class: "panel healthcheck", "data-healthcheck": hc.name },
        h("h2", {}, hc.title || hc.name, badge(hc.badge)),
        h("div", { class: "muted" }, `Healthcheck ${sourceText(hc.source)}`),
        table,
        await settingsPanel(sys.name, hc.name)),
    );
  }
  return h(
    "div",
    {},
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Systems"), " / ", sys.name),
    h("h1", {}, sys.title || sys.name, badge(sys.badge)),
    h("p", { class: "muted" }, sys.description || sourceText(sys.source), " · ", countsText(sys.counts)),
    sections,
  );
}

// Template and assignment settings (enabled, baseline window, notify) of one healthcheck.
async function settingsPanel(system, healthcheck) {
  const [template, assignment] = await Promise.all([
    optional(`/api/v1/healthchecks/${encodeURIComponent(healthcheck)}/settings`),
    optional(`/api/v1/systems/${encodeURIComponent(system)}/healthchecks/${encodeURIComponent(healthcheck)}/settings`),
  ]);
  const parts = [h("h3", {}, "Settings")];
  if (template) parts.push(scopeForm("Every system (healthcheck template)", template, `/api/v1/healthchecks/${encodeURIComponent(healthcheck)}/settings`, true));
  if (assignment) parts.push(scopeForm(`This system only (${system})`, assignment, `/api/v1/systems/${encodeURIComponent(system)}/healthchecks/${encodeURIComponent(healthcheck)}/settings`, false));
  return h("div", {}, parts);
}

function ownerNote(owner) {
  if (owner.editable) return null;
  return h("div", { class: "owner" }, `Read-only: defined in ${owner.file}. Edit that file to change these settings.`);
}

function triState(name, value, disabled, inheritLabel) {
  const select = h("select", { name, disabled });
  const options = [["", inheritLabel], ["true", "yes"], ["false", "no"]];
  for (const [v, label] of options) {
    select.append(h("option", { value: v, selected: String(value ?? "") === v }, label));
  }
  return select;
}

function scopeForm(title, owner, url, isTemplate) {
  const disabled = !owner.editable;
  const settings = owner.settings;
  const inherit = isTemplate ? "default" : "inherit";
  const errors = {};
  const control = (key, label, input) => {
    errors[key] = h("span", { class: "field-error", "data-key": key });
    return h("label", {}, label, input, errors[key]);
  };
  const form = h(
    "form",
    { class: "settings scope", "data-scope": isTemplate ? "template" : "assignment" },
    control("enabled", "Detection enabled", triState("enabled", settings.enabled, disabled, inherit)),
    control("notify", "Notify", triState("notify", settings.notify, disabled, inherit)),
    control("baselineWindow", "Baseline window", h("input", { name: "baselineWindow", value: settings.baselineWindow ?? "", placeholder: isTemplate ? "7d" : "inherit", disabled })),
  );
  const notice = h("span", { class: "notice" });
  form.append(h("div", { class: "form-actions" }, h("button", { class: "primary", disabled }, "Save"), notice));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { fieldOverrides: settings.fieldOverrides || {} };
    for (const key of ["enabled", "notify"]) if (data.get(key) !== "") body[key] = data.get(key) === "true";
    if (data.get("baselineWindow")) body.baselineWindow = data.get("baselineWindow");
    await save(url, body, notice, errors);
  });
  return h("div", { class: "scope-block" }, h("h3", {}, title), ownerNote(owner), form);
}

// Sends a settings body and shows the engine's messages beside the controls they name.
async function save(url, body, notice, errors) {
  for (const el of Object.values(errors)) el.textContent = "";
  notice.className = "notice";
  notice.textContent = "Saving…";
  try {
    await api(url, { method: "PUT", body });
    notice.className = "notice ok";
    notice.textContent = "Saved";
    return true;
  } catch (error) {
    notice.className = "notice error";
    notice.textContent = error.message;
    let shown = 0;
    for (const detail of error.details || []) {
      const key = String(detail.key || "").split(".").pop();
      if (errors[key]) {
        errors[key].textContent = detail.message;
        shown += 1;
      }
    }
    if (shown && shown === error.details.length) notice.textContent = "Not saved: see the messages beside the settings.";
    return false;
  }
}

// ---- one field ----

function ruleSummary(eff, schema) {
  const st = eff.settings;
  if (!st.enabled.value) return "Detection is off for this field.";
  const dir = st.direction.value;
  if (!dir) return "This field has no direction, so it is recorded but never alerts.";
  const unit = schema?.unit ? ` ${schema.unit}` : "";
  const n = st.confirmationWindow.value;
  const runs = n === 1 ? "on the first check" : `for ${n} consecutive checks`;
  const what = {
    "lower-is-better": "the value rises above the recent baseline",
    "higher-is-better": "the value falls below the recent baseline",
    deviation: "the value moves away from the recent baseline in either direction",
    dominance: "the value differs from its usual value",
  }[dir];
  let text = `Alerts when ${what} ${runs}`;
  const floors = [];
  if (dir !== "dominance") {
    floors.push(`by more than ${fmt(3 * st.sensitivity.value)} σ`);
    if (st.minAbsoluteDelta.value > 0) floors.push(`the change is at least ${fmt(st.minAbsoluteDelta.value)}${unit}`);
    if (st.minRelativeDelta.value > 0) floors.push(`at least ${fmt(st.minRelativeDelta.value * 100)} %`);
  }
  if (floors.length) text += " and " + floors.join(" and ");
  text += ".";
  if (st.driftEnabled.value) text += ` Hourly drift checks flag a slow shift beyond ${fmt(st.driftThreshold.value)} σ.`;
  if (!st.notify.value) text += " Notifications are off.";
  return text;
}

function effectiveTable(eff) {
  const rows = SETTING_LABELS.map(([key, label]) => {
    const r = eff.settings[key];
    return h("tr", { "data-setting": key }, h("td", {}, label), h("td", { class: "num" }, fmt(r.value ?? "none")), h("td", { class: "layer" }, LAYER_NAMES[r.layer] || r.layer));
  });
  return h("table", { class: "effective" }, h("thead", {}, h("tr", {}, h("th", {}, "Setting"), h("th", {}, "Value"), h("th", {}, "From"))), h("tbody", {}, rows));
}

function chart(samples, baseline, eff, anomalies) {
  const width = 1000;
  const height = 260;
  const pad = { left: 56, right: 12, top: 12, bottom: 26 };
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Recent samples with baseline band" });
  // Invalid samples (NaN, out of range, wrong type) were never judged, so they stay off the
  // chart and out of its scale.
  const points = samples
    .filter((p) => typeof p.value === "number" && p.valid !== false)
    .map((p) => ({ t: Date.parse(p.at), v: p.value }))
    .sort((a, b) => a.t - b.t);
  if (!points.length) {
    const text = s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" });
    text.textContent = "No valid numeric samples to chart";
    svg.append(text);
    return svg;
  }
  const st = eff.settings;
  const dir = st.direction.value;
  const values = points.map((p) => p.v);
  let band = null;
  let floor = null;
  if (baseline && dir && dir !== "dominance") {
    const half = 3 * baseline.stdDev * st.sensitivity.value;
    const up = dir === "lower-is-better" || dir === "deviation";
    const down = dir === "higher-is-better" || dir === "deviation";
    band = { lo: down ? baseline.mean - half : baseline.mean, hi: up ? baseline.mean + half : baseline.mean, up, down };
    const minChange = Math.max(st.minAbsoluteDelta.value, st.minRelativeDelta.value * Math.abs(baseline.mean));
    if (minChange > 0) floor = { up: up ? baseline.mean + minChange : null, down: down ? baseline.mean - minChange : null };
    values.push(band.lo, band.hi, baseline.mean);
    if (floor?.up != null) values.push(floor.up);
    if (floor?.down != null) values.push(floor.down);
  }
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) { hi += 1; lo -= 1; }
  const span = hi - lo;
  lo -= span * 0.05;
  hi += span * 0.05;
  const t0 = points[0].t;
  const t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
  for (const a of anomalies) {
    const start = Math.max(Date.parse(a.startedAt), t0);
    const end = Math.min(a.recoveredAt ? Date.parse(a.recoveredAt) : t1, t1);
    if (end < t0 || start > t1) continue;
    svg.append(s("rect", { class: `episode ${a.state}`, x: x(start) - 3, y: pad.top, width: Math.max(6, x(end) - x(start) + 6), height: height - pad.top - pad.bottom, "data-anomaly": a.id }));
  }
  if (band) svg.append(s("rect", { class: "band", x: pad.left, width: width - pad.left - pad.right, y: y(band.hi), height: Math.max(1, y(band.lo) - y(band.hi)) }));
  if (floor) {
    for (const v of [floor.up, floor.down]) if (v != null) svg.append(s("line", { class: "floor", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
  }
  if (baseline && dir !== "dominance") svg.append(s("line", { class: "mean", x1: pad.left, x2: width - pad.right, y1: y(baseline.mean), y2: y(baseline.mean) }));
  svg.append(s("line", { class: "axis", x1: pad.left, x2: pad.left, y1: pad.top, y2: height - pad.bottom }));
  svg.append(s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom }));
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    const label = s("text", { class: "tick", x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = fmt(v, 1);
    svg.append(label);
  }
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = s("text", { class: "tick", x: x(t), y: height - 8, "text-anchor": anchor });
    label.textContent = new Date(t).toLocaleString();
    svg.append(label);
  }
  svg.append(s("polyline", { class: "line", points: points.map((p) => `${x(p.t)},${y(p.v)}`).join(" ") }));
  for (const p of points) {
    const outside = band && ((band.up && p.v > band.hi) || (band.down && p.v < band.lo));
    svg.append(s("circle", { class: outside ? "dot bad" : "dot", cx: x(p.t), cy: y(p.v), r: 2.5 }));
  }
  return svg;
}

function legend() {
  const item = (cls, text) => h("span", {}, h("i", { class: cls }), text);
  return h("div", { class: "legend" }, item("k-mean", "baseline mean"), item("k-band", "band μ ± 3σ·sensitivity"), item("k-floor", "minimum change"), item("k-episode", "anomaly episode"));
}

function anomalyTable(anomalies, withSeries) {
  if (!anomalies.length) return h("p", { class: "empty" }, "No anomalies.");
  const head = ["Started", "Kind", "State", "Observed", "Baseline", "Deviation", ""];
  if (withSeries) head.splice(1, 0, "Where");
  const rows = anomalies.map((a) => {
    const cells = [
      h("td", {}, when(a.startedAt)),
      h("td", {}, a.kind),
      h("td", {}, badge(a.state), a.suppressed ? h("span", { class: "badge plain" }, "suppressed") : null),
      h("td", { class: "num" }, a.observedValue),
      h("td", { class: "num" }, a.baselineMean === null ? "—" : `${fmt(a.baselineMean)} ± ${fmt(a.baselineStdDev)}`),
      h("td", { class: "num" }, deviationText(a)),
      h("td", {}, anomalyActions(a)),
    ];
    if (withSeries) {
      cells.splice(1, 0, h("td", {}, link("#/field", { system: a.system, healthcheck: a.healthcheck, field: a.field, environment: a.environment }, `${a.system} / ${a.healthcheck} / ${fieldName(a.field)}`)));
    }
    return h("tr", { "data-anomaly": a.id }, cells);
  });
  return h("table", { class: "anomalies" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

// "system field" of every muted field, and "system " for a muted system, as last loaded.
let mutedFields = new Set();

function anomalyActions(a) {
  const act = async (button, path, body) => {
    button.disabled = true;
    try {
      await api(path, { method: "POST", body });
      render();
    } catch (error) {
      button.disabled = false;
      button.title = error.message;
      button.textContent = "failed";
    }
  };
  const buttons = [];
  if (a.state === "anomaly" && !a.suppressed) {
    buttons.push(h("button", { onclick: (e) => act(e.target, `/api/v1/anomalies/${a.id}/suppress`) }, "Suppress"));
  }
  if (a.suppressed) buttons.push(h("button", { onclick: (e) => act(e.target, `/api/v1/anomalies/${a.id}/unsuppress`) }, "Unsuppress"));
  if (a.state !== "recovered" && !mutedFields.has(`${a.system} ${a.field}`) && !mutedFields.has(`${a.system} `)) {
    const mute = { system: a.system, field: a.field };
    buttons.push(h("button", { onclick: (e) => act(e.target, "/api/v1/mutes", mute), title: "Stop notifications about this field until unmuted" }, "Mute"));
  }
  return h("div", { class: "row-actions" }, buttons);
}

function overrideForm(eff) {
  const assignment = eff.assignment;
  const template = eff.template;
  const disabled = !assignment.editable && !template.editable;
  const current = assignment.settings.fieldOverrides?.[eff.field] || template.settings.fieldOverrides?.[eff.field] || {};
  const errors = {};
  const control = (key, label, input) => {
    errors[key] = h("span", { class: "field-error", "data-key": key });
    return h("label", {}, label, input, errors[key]);
  };
  const num = (key, step) => h("input", { name: key, type: "number", step, value: current[key] ?? "", placeholder: fmt(eff.settings[key].value), disabled });
  const direction = h("select", { name: "direction", disabled });
  for (const [v, label] of [["", "inherit"], ["lower-is-better", "lower is better"], ["higher-is-better", "higher is better"], ["deviation", "either way"], ["dominance", "usual value"]]) {
    direction.append(h("option", { value: v, selected: (current.direction ?? "") === v }, label));
  }
  const scope = h("select", { name: "scope", disabled });
  if (assignment.editable) scope.append(h("option", { value: "assignment" }, `this system only (${eff.system})`));
  if (template.editable) scope.append(h("option", { value: "template" }, `every system using ${eff.healthcheck}`));
  const form = h(
    "form",
    { class: "settings", id: "override-form" },
    control("scope", "Applies to", scope),
    control("enabled", "Enabled", triState("enabled", current.enabled, disabled, "inherit")),
    control("direction", "Direction", direction),
    control("sensitivity", "Sensitivity", num("sensitivity", "any")),
    control("confirmationWindow", "Confirmation window (checks)", num("confirmationWindow", "1")),
    control("minAbsoluteDelta", "Minimum change", num("minAbsoluteDelta", "any")),
    control("minRelativeDelta", "Minimum relative change (0.5 = 50 %)", num("minRelativeDelta", "any")),
    control("driftEnabled", "Drift enabled", triState("driftEnabled", current.driftEnabled, disabled, "inherit")),
    control("driftThreshold", "Drift threshold (σ)", num("driftThreshold", "any")),
  );
  const notice = h("span", { class: "notice", id: "override-notice" });
  form.append(h("div", { class: "form-actions" }, h("button", { class: "primary", disabled }, "Save override"), notice));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const entry = {};
    for (const key of ["sensitivity", "confirmationWindow", "minAbsoluteDelta", "minRelativeDelta", "driftThreshold"]) {
      if (data.get(key) !== "") entry[key] = Number(data.get(key));
    }
    for (const key of ["enabled", "driftEnabled"]) if (data.get(key) !== "") entry[key] = data.get(key) === "true";
    if (data.get("direction")) entry.direction = data.get("direction");
    const onTemplate = data.get("scope") === "template";
    const settings = structuredClone(onTemplate ? template.settings : assignment.settings);
    settings.fieldOverrides = { ...(settings.fieldOverrides || {}), [eff.field]: entry };
    const url = onTemplate
      ? `/api/v1/healthchecks/${encodeURIComponent(eff.healthcheck)}/settings`
      : `/api/v1/systems/${encodeURIComponent(eff.system)}/healthchecks/${encodeURIComponent(eff.healthcheck)}/settings`;
    if (await save(url, settings, notice, errors)) setTimeout(render, 400);
  });
  return h(
    "section",
    { class: "panel" },
    h("h2", {}, "Override for this field"),
    disabled ? null : h("p", { class: "muted" }, "Empty boxes inherit. Changes apply to the next check."),
    ownerNote(assignment),
    template.file === assignment.file ? null : ownerNote(template),
    form,
  );
}

async function fieldView(params) {
  const q = new URLSearchParams(clean({ system: params.system, healthcheck: params.healthcheck, field: params.field, environment: params.environment }));
  const [eff, samples, series, feed] = await Promise.all([
    api(`/api/v1/fields/effective?${q}`),
    optional(`/api/v1/series/samples?${q}&limit=100000`),
    api(`/api/v1/series?${q}`),
    api(`/api/v1/anomalies?${q}&suppression=all&limit=100`),
  ]);
  const entry = (series.series || []).find((e) => (e.environment || "") === (params.environment || "")) || null;
  const recent = (samples?.samples || []).slice(-300);
  const baseline = entry?.baseline || null;
  const label = eff.schema?.label || eff.fieldName;
  return h(
    "div",
    {},
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Systems"), " / ", link("#/system", { name: eff.system }, eff.system), " / ", eff.healthcheck, params.environment ? ` / ${params.environment}` : ""),
    h("h1", {}, label, entry ? badge(seriesState(entry)) : null),
    h("div", { class: "muted mono" }, eff.field),
    h("p", { class: "summary", id: "rule-summary" }, ruleSummary(eff, eff.schema)),
    h("section", { class: "panel" },
      h("h2", {}, "Recent samples"),
      h("div", { class: "muted" }, baselineStatus(baseline, entry)),
      chart(recent, baseline, eff, feed.anomalies),
      legend()),
    h("section", { class: "panel" }, h("h2", {}, "Effective settings"), effectiveTable(eff)),
    overrideForm(eff),
    h("section", { class: "panel" }, h("h2", {}, "Anomaly history"), anomalyTable(feed.anomalies, false)),
  );
}

// ---- anomaly feed ----

async function anomaliesView() {
  const [open, recent, mutes] = await Promise.all([
    api("/api/v1/anomalies?suppression=all&state=anomaly&limit=200"),
    api("/api/v1/anomalies?suppression=all&limit=100"),
    optional("/api/v1/mutes"),
  ]);
  mutedFields = new Set((mutes?.mutes || []).map((m) => `${m.system} ${m.field || ""}`));
  const suspicious = recent.anomalies.filter((a) => a.state === "suspicious");
  return h(
    "div",
    {},
    h("h1", {}, "Anomalies"),
    h("section", { class: "panel" }, h("h2", {}, "Open"), anomalyTable([...open.anomalies, ...suspicious], true)),
    h("section", { class: "panel" }, h("h2", {}, "Recently recovered"), anomalyTable(recent.anomalies.filter((a) => a.state === "recovered"), true)),
    h("section", { class: "panel", id: "mutes" }, h("h2", {}, "Mutes"), mutesList(mutes)),
  );
}

function mutesList(mutes) {
  if (mutes === null) return h("p", { class: "empty" }, "Mutes are not available on this server.");
  const list = mutes.mutes || [];
  if (!list.length) return h("p", { class: "empty" }, "No active mutes.");
  const unmute = async (m) => {
    await api("/api/v1/mutes?" + new URLSearchParams(clean({ system: m.system, field: m.field })), { method: "DELETE" });
    render();
  };
  const rows = list.map((m) =>
    h("tr", {},
      h("td", {}, m.field ? `${m.system} / ${m.field}` : `${m.system} (every field)`),
      h("td", {}, when(m.mutedAt)),
      h("td", {}, h("button", { onclick: () => unmute(m) }, "Unmute"))),
  );
  return h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Muted"), h("th", {}, "Since"), h("th", {}, ""))), h("tbody", {}, rows));
}

// ---- configuration ----

async function configView() {
  const [gitops, deliveries] = await Promise.all([optional("/api/v1/gitops"), optional("/api/v1/deliveries")]);
  return h(
    "div",
    {},
    h("h1", {}, "Configuration"),
    h("section", { class: "panel" }, h("h2", {}, "Config folder"), folderError(gitops), documentsTable(gitops)),
    h("section", { class: "panel" }, h("h2", {}, "Notifier deliveries"), deliveriesTable(deliveries)),
  );
}

// While the folder cannot be read, the rows below are those of the last rescan that read it.
function folderError(gitops) {
  const error = gitops?.folderError;
  if (!error) return null;
  return h("p", { class: "notice error", id: "folder-error" },
    `${error.message} (failing since ${when(error.since)}). The last applied configuration stays in effect until a rescan reads the folder again.`);
}

function documentsTable(gitops) {
  if (gitops === null) return h("p", { class: "empty" }, "No config folder is served; start with --config-dir.");
  if (!gitops.documents.length) return h("p", { class: "empty" }, "The folder has no documents.");
  const rows = gitops.documents.map((d) =>
    h("tr", { "data-file": d.file },
      h("td", { class: "mono" }, d.file, d.document === null ? "" : ` #${d.document}`),
      h("td", {}, [d.kind, d.name].filter(Boolean).join(" ") || "—"),
      h("td", {}, badge(d.state), d.keptPrevious ? h("div", { class: "layer" }, "previous definition kept") : null),
      h("td", {}, d.messages.length
        ? h("ul", { class: "messages" }, d.messages.map((m) => h("li", {}, h("span", { class: "mono" }, m.line > 0 ? `line ${m.line}:${m.column}` : "whole file"), ` ${m.severity}: `, m.path ? h("code", {}, m.path) : null, m.path ? " " : null, m.message)))
        : h("span", { class: "muted" }, "no problems"))),
  );
  return h("table", {}, h("thead", {}, h("tr", {}, ["File", "Entity", "State", "Findings"].map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

function deliveriesTable(deliveries) {
  if (deliveries === null) return h("p", { class: "empty" }, "Deliveries are not available on this server.");
  const list = deliveries.deliveries || [];
  if (!list.length) return h("p", { class: "empty" }, "No deliveries yet.");
  const rows = list.map((d) =>
    h("tr", { "data-delivery": d.id },
      h("td", {}, d.notifier),
      h("td", {}, `#${d.anomalyId}`),
      h("td", { class: "transition" }, d.transition || h("span", { class: "muted" }, "—")),
      h("td", {}, badge(d.state)),
      h("td", { class: "num" }, d.attempts),
      h("td", {}, when(d.createdAt)),
      h("td", {}, deliveryError(d))),
  );
  const headings = ["Notifier", "Anomaly", "Transition", "State", "Attempts", "Created", "Last error"];
  return h("table", { class: "deliveries" }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

// A delivered row's earlier error explains its retries. It is shown muted, so it does not read
// as a current problem.
function deliveryError(d) {
  if (d.lastError) return d.lastError;
  if (d.errorBeforeDelivery) return h("span", { class: "muted" }, `before delivery: ${d.errorBeforeDelivery}`);
  return "";
}

// ---- live updates ----

let pending = null;

function connectEvents() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/v1/events");
  source.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  source.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  const refresh = () => {
    // Typing in a form is never interrupted by a refresh.
    if (document.activeElement?.closest?.("form")) return;
    clearTimeout(pending);
    pending = setTimeout(render, 300);
  };
  for (const name of ["state-changed", "baseline-updated", "drift-confirmed"]) source.addEventListener(name, refresh);
}

window.addEventListener("hashchange", render);
render();
connectEvents();
