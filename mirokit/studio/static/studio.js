// mirokit studio page: builds the request from the form, polls its job, draws the results. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const GRID = 63;  // reward targets live on the 1/63 grid of the 64 calibration bins
const CLIENT = (() => {
  let id = localStorage.getItem("mirokit-client");
  if (!id) { id = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join(""); localStorage.setItem("mirokit-client", id); }
  return id;
})();
const state = { info: null, model: null, job: null, timer: null, last: {} };

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Studio-Client": CLIENT }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
  return body;
}
const imageUrl = (job, file) => `/api/images/${job}/${file}?client=${CLIENT}`;
function showError(message) { const e = $("error"); e.textContent = message; e.hidden = !message; }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));

// ---- the form ------------------------------------------------------------------------------------------------
function meaningText(key, k) {
  const m = (state.model.meanings[key] || [])[k] || {};
  if (m.raw_low === undefined) return "no calibration stored with the model";
  return `raw ${fmt(m.raw_low)} – ${fmt(m.raw_high)}, the ${m.percentile_low.toFixed(0)}–${m.percentile_high.toFixed(0)}th percentile of training scores`;
}
function targetCell(key, side, value) {
  const k = value === null ? (side === "pos" ? GRID : 0) : Math.round(value * GRID);
  const range = el("input", { type: "range", min: 0, max: GRID, step: 1, value: k, "data-key": key, "data-side": side, "aria-label": `${key} ${side}` });
  const shown = el("span", { class: "value" });
  const missing = el("input", { type: "checkbox", "data-key": key, "data-side": side, class: "missing", title: "missing: leave this reward out" });
  const meaning = el("span", { class: "meaning" });
  const update = () => {
    range.disabled = missing.checked;
    shown.textContent = missing.checked ? "missing" : (range.value / GRID).toFixed(3);
    meaning.textContent = missing.checked ? "the model is told nothing about this reward" : meaningText(key, Number(range.value));
  };
  missing.checked = value === null;
  range.addEventListener("input", update); missing.addEventListener("change", update);
  update();
  return el("td", {}, range, " ", shown, el("label", {}, missing, " missing"), meaning);
}
function setTargets(pos = {}, neg = {}) {
  const body = $("rewards").querySelector("tbody");
  body.replaceChildren();
  for (const key of state.model.reward_keys) {
    const p = key in pos ? pos[key] : 1.0, n = key in neg ? neg[key] : 0.0;
    body.append(el("tr", {}, el("td", {}, key), targetCell(key, "pos", p), targetCell(key, "neg", n)));
  }
}
function readTargets(side) {
  const out = {};
  for (const key of state.model.reward_keys) {
    const range = document.querySelector(`input[type=range][data-key="${key}"][data-side="${side}"]`);
    const missing = document.querySelector(`input.missing[data-key="${key}"][data-side="${side}"]`);
    out[key] = missing.checked ? null : Number(range.value) / GRID;
  }
  return out;
}
// The sampler controls are drawn from state.info.sampling_options (one per sampling setting the server declares).
const controlId = (name) => name.replaceAll("_", "-");
function samplerControls() {
  const box = $("sampler-options"); box.replaceChildren();
  for (const o of state.info.sampling_options) {
    const id = controlId(o.name);
    if (o.group && !$("guidance-kind")) {
      const kind = el("select", { id: "guidance-kind", onchange: guidanceKind }, el("option", { value: "joint" }, "joint"), el("option", { value: "separate" }, "text / reward"));
      box.append(el("label", {}, "guidance ", kind));
    }
    let input;
    if (o.kind === "choice") {
      input = el("select", { id });
      for (const c of o.choices) input.append(el("option", { value: c }, c));
    } else if (o.kind === "interval") {
      const end = (side, hint) => el("input", { id: `${id}-${side}`, type: "number", min: 0, max: 1, step: o.step, placeholder: hint, "aria-label": `${o.name} ${side}` });
      input = el("span", { id }, end("lo", "0"), "–", end("hi", "1"));
    } else {
      input = el("input", { id, type: "number", step: o.step ?? "any", min: o.minimum ?? null });
    }
    const label = el("label", { class: o.group || "", title: o.help }, `${o.label} `, input);
    label.hidden = o.group === "separate";
    box.append(label);
    if (o.name === "seed") box.append(el("button", { id: "random-seed", type: "button", title: "a random seed", onclick: () => ($("seed").value = Math.floor(Math.random() * 1e6)) }, "random"));
  }
}
function setSampler(s) {
  for (const o of state.info.sampling_options) {
    const value = s[o.name], id = controlId(o.name);
    if (value === undefined || o.group) continue;
    if (o.kind === "interval") { $(`${id}-lo`).value = value === null ? "" : value[0]; $(`${id}-hi`).value = value === null ? "" : value[1]; }
    else if (value !== null) $(id).value = value;
  }
  const separate = s.text_guidance !== undefined && s.text_guidance !== null;
  if (separate) { $("text-guidance").value = s.text_guidance; $("reward-guidance").value = s.reward_guidance; }
  if (s.guidance !== undefined && s.guidance !== null) $("guidance").value = s.guidance;
  if (s.guidance !== undefined || separate) { $("guidance-kind").value = separate ? "separate" : "joint"; guidanceKind(); }
}
function readSampler() {  // {setting: value} of every control; the guidance group as the switch says
  const out = {}, separate = $("guidance-kind").value === "separate";
  for (const o of state.info.sampling_options) {
    const id = controlId(o.name);
    if (o.group && (o.group === "separate") !== separate) continue;
    if (o.kind === "interval") {
      const lo = $(`${id}-lo`).value, hi = $(`${id}-hi`).value;
      out[o.name] = lo === "" && hi === "" ? null : [lo === "" ? 0 : Number(lo), hi === "" ? 1 : Number(hi)];
    } else out[o.name] = o.kind === "choice" ? $(id).value : Number($(id).value);
  }
  return out;
}
function guidanceKind() {
  const separate = $("guidance-kind").value === "separate";
  document.querySelectorAll(".separate").forEach((n) => (n.hidden = !separate));
  document.querySelectorAll(".joint").forEach((n) => (n.hidden = separate));
}
function keySelect(id, value) {
  const s = el("select", { id });
  for (const k of state.model.reward_keys) s.append(el("option", { value: k }, k));
  if (value) s.value = value;
  return s;
}
function modeOptions() {
  const box = $("mode-options"); box.replaceChildren();
  const keys = state.model.reward_keys, mode = $("mode").value;
  const points = () => el("label", {}, "points ", el("input", { id: "points", type: "number", min: 2, max: state.info.limits.max_points, value: mode === "pareto" ? 3 : 5 }));
  if (mode === "sweep") box.append(el("label", {}, "reward ", keySelect("sweep-key")), points());
  if (mode === "pareto") box.append(el("label", {}, "x ", keySelect("pareto-a", keys[0])), el("label", {}, "y ", keySelect("pareto-b", keys[1] || keys[0])), points());
  if (mode === "ask_select") box.append(el("label", {}, "reward ", keySelect("select-key")), el("label", {}, "pool ", el("input", { id: "pool", type: "number", min: 2, value: 8 })));
  if (mode === "ab") {
    const s = el("select", { id: "model-b" });
    for (const m of state.info.models) if (m.name !== state.model.name) s.append(el("option", { value: m.name }, m.name));
    box.append(el("label", {}, "model B ", s));
    if (!s.options.length) box.append(el("span", {}, " (start the studio with two models)"));
  }
  if (!keys.length && mode !== "generate" && mode !== "draft_final" && mode !== "ab") box.append(el("span", {}, "this model has no rewards"));
}
function request() {
  const r = Object.assign({ model: state.model.name, mode: $("mode").value, prompt: $("prompt").value, rewards: readTargets("pos"),
                             negative_rewards: readTargets("neg"), num_images: Number($("num-images").value) }, readSampler());
  const val = (id) => ($(id) ? $(id).value : undefined);
  if (r.mode === "sweep") Object.assign(r, { sweep_key: val("sweep-key"), points: Number(val("points")) });
  if (r.mode === "pareto") Object.assign(r, { pareto_keys: [val("pareto-a"), val("pareto-b")], points: Number(val("points")) });
  if (r.mode === "ask_select") Object.assign(r, { select_key: val("select-key"), pool: Number(val("pool")) });
  if (r.mode === "ab") r.model_b = val("model-b");
  return r;
}

// ---- presets -------------------------------------------------------------------------------------------------
function presetList() {
  const keys = state.model.reward_keys, s = $("preset");
  s.replaceChildren(el("option", { value: "" }, "preset…"));
  s.append(el("option", { value: "all-high" }, "all rewards high (official)"));
  if (keys.includes("aesthetic_score")) s.append(el("option", { value: "paper-mix" }, "the paper's mix (aesthetic 0.625)"));
  for (const k of keys) s.append(el("option", { value: `only:${k}` }, `${k} only`));
  for (const k of keys) s.append(el("option", { value: `off:${k}` }, `${k} off`));
  for (const name of Object.keys(state.info.presets)) s.append(el("option", { value: `sampler:${name}` }, `sampler: ${name}`));
}
function applyPreset(name) {
  const keys = state.model.reward_keys, all = (v) => Object.fromEntries(keys.map((k) => [k, v]));
  if (name === "all-high") { setTargets(all(1.0), all(0.0)); setSampler(state.info.presets.official); }
  else if (name === "paper-mix") setTargets(Object.assign(all(1.0), { aesthetic_score: Math.round(0.625 * GRID) / GRID }), all(0.0));
  else if (name.startsWith("only:")) { const k = name.slice(5); setTargets(Object.assign(all(null), { [k]: 1.0 }), all(null)); }
  else if (name.startsWith("off:")) { const k = name.slice(4); setTargets(Object.assign(all(1.0), { [k]: null }), Object.assign(all(0.0), { [k]: null })); }
  else if (name.startsWith("sampler:")) setSampler(state.info.presets[name.slice(8)]);
}
function applySettings(s) {  // a preset JSON (eval tune-targets) or the settings a studio PNG carries
  const settings = s.settings || s;
  const unknown = Object.keys(Object.assign({}, settings.rewards, settings.negative_rewards)).filter((k) => !state.model.reward_keys.includes(k));
  if (unknown.length) throw new Error(`the settings name reward(s) this model lacks: ${unknown.join(", ")} (its keys: ${state.model.reward_keys.join(", ") || "none"})`);
  const pos = {}, neg = {};
  for (const k of state.model.reward_keys) { pos[k] = (settings.rewards || {})[k] ?? (settings.rewards && k in settings.rewards ? null : 1.0); neg[k] = (settings.negative_rewards || {})[k] ?? (settings.negative_rewards && k in settings.negative_rewards ? null : 0.0); }
  setTargets(pos, neg); setSampler(settings);
  if (s.prompt) $("prompt").value = s.prompt;
}
function exportPreset() {
  const r = request();
  const preset = { rewards: r.rewards, negative_rewards: r.negative_rewards };
  for (const o of state.info.sampling_options) if (o.surfaces.includes("preset") && r[o.name] !== undefined && r[o.name] !== null) preset[o.name] = r[o.name];
  const a = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(preset, null, 1)], { type: "application/json" })), download: "preset.json" });
  document.body.append(a); a.click(); a.remove();
}

// ---- jobs ----------------------------------------------------------------------------------------------------
async function generate() {
  showError("");
  try {
    const job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request()) });
    track(job);
  } catch (err) { showError(err.message); }
}
function track(job) {
  state.job = job.id; $("cancel").disabled = false; $("generate").disabled = true;
  clearTimeout(state.timer); poll(job);
}
async function poll(job) {
  if (!job) { try { job = await api(`/api/jobs/${state.job}`); } catch (err) { showError(err.message); return finishJob(); } }
  const p = $("progress"); p.hidden = false; p.max = job.total || 1; p.value = job.step;
  const eta = job.eta_seconds === null || job.eta_seconds === undefined ? "" : `, about ${Math.ceil(job.eta_seconds)} s left`;
  $("queue-status").textContent = job.status === "queued" ? `queued: ${job.position} ahead${eta}` : job.status === "running" ? `step ${job.step} of ${job.total}${eta}` : job.status;
  if (job.has_preview) { $("preview").hidden = false; $("preview").src = `/api/jobs/${job.id}/preview?client=${CLIENT}&t=${Date.now()}`; }
  if (job.status === "done") { render(job); return finishJob(); }
  if (job.status === "failed") { showError(job.error); return finishJob(); }
  if (job.status === "cancelled") return finishJob();
  state.timer = setTimeout(() => poll(), 300);
}
function finishJob() { $("cancel").disabled = true; $("generate").disabled = false; $("preview").hidden = true; $("progress").hidden = true; loadHistory(); }
async function cancel() { if (state.job) { try { await api(`/api/jobs/${state.job}`, { method: "DELETE" }); } catch (err) { showError(err.message); } } }

// ---- results -------------------------------------------------------------------------------------------------
function scoreTable(r, previous) {
  const t = el("table");
  t.append(el("tr", {}, el("td", {}, ""), el("td", {}, "asked"), el("td", { title: "the calibrated target the image's score falls in" }, "measured"), el("td", { title: "the raw reward score" }, "raw")));
  for (const [key, asked] of Object.entries(r.asked)) {
    const m = r.scores[key];
    const row = el("tr", {}, el("td", {}, key), el("td", {}, asked === null ? "missing" : fmt(asked)), el("td", {}, m ? fmt(m.value) : "–"), el("td", {}, m ? fmt(m.raw, 2) : "–"));
    if (previous && m && previous.scores[key] && previous.asked[key] === asked && m.value < previous.scores[key].value - 2 / GRID) {
      const changed = Object.keys(r.asked).filter((k) => previous.asked[k] !== r.asked[k]);
      row.classList.add("flag"); row.title = `fell from ${fmt(previous.scores[key].value)} when you changed ${changed.join(", ") || "the settings"}`;
      row.children[2].textContent += " ↓";
    }
    t.append(row);
  }
  return t;
}
function card(job, r, previous) {
  const tools = el("div", { class: "tools" },
    el("button", { type: "button", onclick: () => navigator.clipboard.writeText(r.cli) }, "copy CLI"),
    el("button", { type: "button", onclick: () => navigator.clipboard.writeText(r.python) }, "copy Python"),
    el("button", { type: "button", onclick: () => { applySettings(r); } }, "use settings"),
    el("button", { type: "button", class: "star", onclick: (e) => star(job, r.index, e.target) }, "☆"));
  const classes = ["card"]; if (r.meta && r.meta.selected) classes.push("selected");
  return el("div", { class: classes.join(" "), id: `r-${job}-${r.index}`, "data-index": r.index },
    el("a", { href: imageUrl(job, r.file), target: "_blank" }, el("img", { src: imageUrl(job, r.file), alt: r.prompt })),
    el("div", { class: "label" }, r.label || r.model), el("div", {}, `seed ${r.settings.seed}, image ${r.image}, ${r.settings.solver} ${r.settings.steps} steps, ${r.evaluations} evaluations`),
    scoreTable(r, previous), el("details", {}, el("summary", {}, "CLI"), el("code", {}, r.cli)), tools);
}
function render(job) {
  const out = $("results"), summary = $("summary");
  out.replaceChildren(); summary.replaceChildren();
  const s = job.summary || {};
  if (job.mode === "sweep") summary.append(el("div", { class: "verdict" }, `${s.key}: Spearman of asked target vs measured score ${s.spearman === null ? "undefined (the measured scores do not vary)" : fmt(s.spearman, 2)} over ${s.measured} points` + (s.measured ? "" : " (this reward cannot be measured here)")));
  if (job.mode === "ask_select") {
    const a = s.ask || {}, b = s.select || {};
    summary.append(el("div", { class: "verdict" }, `ask: ${s.key} ${fmt(a.score)} for ${a.evaluations} network evaluations · select: best of the pool ${fmt(b.score)} for ${b.evaluations}`));
  }
  if (job.mode === "pareto") summary.append(pareto(job));
  let groups = [[null, job.results]];
  if (["draft_final", "ab", "ask_select"].includes(job.mode)) {
    const by = {}; for (const r of job.results) (by[r.label] = by[r.label] || []).push(r);
    groups = Object.entries(by);
  }
  const key = `${job.request.model}|${job.request.prompt}|${job.request.seed}`;
  const previous = job.mode === "generate" ? state.last[key] : null;
  for (const [title, results] of groups) {
    if (title) out.append(el("div", { class: "group-title" }, title));
    const strip = el("div", { class: job.mode === "sweep" ? "strip" : "results" });
    results.forEach((r, i) => strip.append(card(job.id, r, previous ? previous[i] : null)));
    out.append(strip);
  }
  if (job.mode === "pareto") for (const i of s.front || []) { const c = $(`r-${job.id}-${i}`); if (c) c.classList.add("front"); }
  if (job.mode === "generate") state.last[key] = job.results;
}
function pareto(job) {
  const s = job.summary, [a, b] = s.keys || [];
  const pts = job.results.filter((r) => r.scores[a] && r.scores[b]);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "pareto"); svg.setAttribute("width", 320); svg.setAttribute("height", 240);
  if (!pts.length) { const t = document.createElementNS(svg.namespaceURI, "text"); t.setAttribute("x", 10); t.setAttribute("y", 20); t.textContent = "these rewards cannot be measured here"; svg.append(t); return svg; }
  const xs = pts.map((r) => r.scores[a].raw), ys = pts.map((r) => r.scores[b].raw);
  const sx = (x) => 30 + 270 * (x - Math.min(...xs)) / ((Math.max(...xs) - Math.min(...xs)) || 1);
  const sy = (y) => 210 - 190 * (y - Math.min(...ys)) / ((Math.max(...ys) - Math.min(...ys)) || 1);
  for (const r of pts) {
    const c = document.createElementNS(svg.namespaceURI, "circle");
    c.setAttribute("cx", sx(r.scores[a].raw)); c.setAttribute("cy", sy(r.scores[b].raw)); c.setAttribute("r", 6);
    c.setAttribute("fill", (s.front || []).includes(r.index) ? "#c77c00" : "#2a6bd1"); c.setAttribute("data-index", r.index);
    const title = document.createElementNS(svg.namespaceURI, "title"); title.textContent = `${r.label}: ${a} ${fmt(r.scores[a].raw)}, ${b} ${fmt(r.scores[b].raw)}`; c.append(title);
    c.addEventListener("click", () => window.open(imageUrl(job.id, r.file), "_blank"));
    svg.append(c);
  }
  for (const [text, x, y] of [[`${a} →`, 200, 232], [`${b} ↑`, 4, 14]]) { const t = document.createElementNS(svg.namespaceURI, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", 12); t.textContent = text; svg.append(t); }
  return svg;
}

// ---- history -------------------------------------------------------------------------------------------------
async function star(job, index, button) {
  try { const r = await api(`/api/history/${job}/star`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ index, starred: button.textContent === "☆" }) }); button.textContent = r.starred.includes(index) ? "★" : "☆"; }
  catch (err) { showError(err.message); }
}
async function loadHistory() {
  let jobs; try { jobs = (await api("/api/history")).jobs; } catch (err) { return showError(err.message); }
  const sort = $("history-sort").value, starredOnly = $("history-starred").checked, box = $("history");
  let items = [];
  for (const j of jobs) for (const r of j.results) if (!starredOnly || (j.starred || []).includes(r.index)) items.push([j, r]);
  if (sort) items = items.filter(([, r]) => r.scores[sort]).sort((x, y) => y[1].scores[sort].raw - x[1].scores[sort].raw);
  box.replaceChildren(...items.slice(0, 60).map(([j, r]) => { const c = card(j.id, r, null); if ((j.starred || []).includes(r.index)) c.querySelector(".star").textContent = "★"; return c; }));
  $("export-zip").href = `/api/history/export.zip?client=${CLIENT}${starredOnly ? "&starred=1" : ""}`;
}

// ---- start ---------------------------------------------------------------------------------------------------
function chooseModel(name) {
  state.model = state.info.models.find((m) => m.name === name) || state.info.models[0];
  setTargets(); setSampler(state.model.defaults); presetList(); modeOptions();
  const sort = $("history-sort"); sort.replaceChildren(el("option", { value: "" }, "newest"));
  for (const k of state.model.measured_keys) sort.append(el("option", { value: k }, k));
}
async function start() {
  try { state.info = await api("/api/info"); } catch (err) { return showError(err.message); }
  for (const m of state.info.models) $("model").append(el("option", { value: m.name }, m.name));
  samplerControls();
  for (const e of state.info.examples) $("examples").append(el("button", { type: "button", onclick: () => ($("prompt").value = e) }, e));
  $("prompt").value = state.info.examples[0] || "";
  chooseModel(state.info.models[0].name);
  $("model").addEventListener("change", (e) => chooseModel(e.target.value));
  $("mode").addEventListener("change", modeOptions);
  $("generate").addEventListener("click", generate);
  $("cancel").addEventListener("click", cancel);
  $("reset-targets").addEventListener("click", () => setTargets());
  $("preset").addEventListener("change", (e) => { if (e.target.value) applyPreset(e.target.value); e.target.value = ""; });
  $("export-preset").addEventListener("click", exportPreset);
  $("import-preset").addEventListener("change", async (e) => {
    const file = e.target.files[0]; if (!file) return;
    try { applySettings(JSON.parse(await file.text())); showError(""); } catch (err) { showError(`preset ${file.name}: ${err.message}`); }
    e.target.value = "";
  });
  $("history-sort").addEventListener("change", loadHistory); $("history-starred").addEventListener("change", loadHistory);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    const file = e.dataTransfer.files[0]; if (!file) return;
    try { applySettings(await api("/api/settings-from-png", { method: "POST", body: file })); showError(""); } catch (err) { showError(`${file.name}: ${err.message}`); }
  });
  loadHistory();
}
start();
