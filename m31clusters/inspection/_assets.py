"""The HTML, style and script of the inspection page, as strings (inlined in every page)."""

import html as _html

__all__ = ["page_parts", "stamp_block"]

_CSS = r"""
:root { --bad: #4060a0; --fg: #e8e8e8; --bg: #181a1f; --panel: #23262d; --accent: #6cb4ff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; gap: 6px 14px;
  align-items: center; padding: 6px 12px; background: var(--panel); border-bottom: 1px solid #000; }
header h1 { font-size: 15px; margin: 0 8px 0 0; font-weight: 600; }
#progress { font-weight: 600; font-variant-numeric: tabular-nums; }
#bar { width: 160px; height: 8px; background: #000; border-radius: 4px; overflow: hidden; }
#bar > div { height: 100%; width: 0; background: var(--accent); }
button { font: inherit; color: var(--fg); background: #343842; border: 1px solid #555;
  border-radius: 4px; padding: 2px 9px; cursor: pointer; }
button:hover { border-color: var(--accent); }
label.sl { display: inline-flex; gap: 4px; align-items: center; }
main { padding: 12px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; text-align: center; }
figcaption { font-size: 12px; opacity: .75; }
.stamp { display: block; background: var(--bg); image-rendering: pixelated;
  image-rendering: crisp-edges; border: 1px solid #000; }
img.stamp { background: var(--bad); }
#info { min-width: 230px; background: var(--panel); padding: 8px 12px; border-radius: 6px; }
#info h2 { margin: 0 0 6px 0; font-size: 18px; }
#info table { border-collapse: collapse; }
#info td { padding: 1px 8px 1px 0; vertical-align: top; }
#info td:first-child { opacity: .7; }
.score { display: inline-block; min-width: 1.8em; padding: 0 6px; border-radius: 4px;
  text-align: center; font-weight: 700; background: #444; }
.s2 { background: #2e8b57; } .s1 { background: #b8860b; } .s0 { background: #a33; }
#neigh { margin-top: 12px; }
#grid { display: grid; gap: 8px; }
.tile { background: var(--panel); padding: 4px; border: 2px solid transparent; border-radius: 5px;
  cursor: pointer; text-align: center; font-size: 12px; }
.tile.cur { border-color: var(--accent); }
#help { font-size: 12px; opacity: .8; margin-top: 14px; }
#help kbd { background: #343842; border: 1px solid #555; border-radius: 3px; padding: 0 4px; }
#warn { color: #ffb347; }
.hidden { display: none !important; }
"""

_BODY = r"""
<header>
  <h1 id="title"></h1>
  <span>inspector <b id="inspector"></b></span>
  <span id="progress" data-testid="progress"></span>
  <div id="bar"><div></div></div>
  <span id="position"></span>
  <button id="b-prev" title="previous (left arrow)">&larr;</button>
  <button id="b-next" title="next (right arrow)">&rarr;</button>
  <button id="b-grid" title="grid / single (g)">grid</button>
  <button id="b-neigh" title="neighbourhood (n)">neighbourhood</button>
  <button id="b-zoomout" title="zoom out (-)">&minus;</button>
  <span id="zoom"></span>
  <button id="b-zoomin" title="zoom in (+)">+</button>
  <label class="sl">brightness <input id="s-bright" type="range" min="0.3" max="3" step="0.05"
    value="1"></label>
  <label class="sl">contrast <input id="s-contrast" type="range" min="0.3" max="3" step="0.05"
    value="1"></label>
  <button id="b-undo" title="undo (u)">undo</button>
  <button id="b-export" title="download the score file">export scores</button>
  <button id="b-import" title="load an exported score file (e.g. from another computer)">
    load scores</button>
  <input id="f-import" type="file" accept=".ecsv,.csv,text/plain" class="hidden">
  <span id="warn"></span>
</header>
<main>
  <section id="single">
    <div class="row">
      <figure><img id="img-b" class="stamp" alt=""><figcaption id="cap-b"></figcaption></figure>
      <figure><img id="img-r" class="stamp" alt=""><figcaption id="cap-r"></figcaption></figure>
      <figure><canvas id="img-c" class="stamp"></canvas><figcaption id="cap-c"></figcaption>
      </figure>
      <div id="info"></div>
    </div>
    <div id="neigh" class="row hidden">
      <figure><img id="nb-b" class="stamp" alt=""><figcaption id="ncap-b"></figcaption></figure>
      <figure><img id="nb-r" class="stamp" alt=""><figcaption id="ncap-r"></figcaption></figure>
      <figure><canvas id="nb-c" class="stamp"></canvas><figcaption id="ncap-c"></figcaption>
      </figure>
    </div>
  </section>
  <section id="grid" class="hidden"></section>
  <div id="help">
    <kbd>2</kbd> cluster &nbsp; <kbd>1</kbd> possible &nbsp; <kbd>0</kbd> not a cluster
    (each scores and advances) &middot; <kbd>&larr;</kbd> <kbd>&rarr;</kbd> move &middot;
    <kbd>u</kbd> undo &middot; <kbd>n</kbd> neighbourhood &middot; <kbd>g</kbd> grid &middot;
    <kbd>+</kbd> <kbd>-</kbd> zoom &middot; <kbd>space</kbd> next unscored &middot;
    scores are kept in this browser; export them when done.
  </div>
  <textarea id="m31-export" class="hidden" readonly></textarea>
</main>
"""

_JS = r"""
(function () {
"use strict";
const DATA = JSON.parse(document.getElementById("m31-data").textContent);
const M = DATA.meta, C = DATA.cands;
// Stamps arrive in the <script> blocks after this one (m31Stamps), so the first
// candidate shows while the rest of the file is still being read.
const S = new Array(C.length), NB = M.neigh_size ? new Array(C.length) : null;
let nLoaded = 0;
const N = C.length;
const KEY = "m31clusters-inspection:" + M.catalog + ":" + M.inspector;
const BAD = [0x40, 0x60, 0xa0];
const $ = (id) => document.getElementById(id);
const timing = window.m31Timing = { firstStamp: null, keys: 0, keyMsTotal: 0, keyMsMax: 0 };
let scores = {};      // id -> [score, ISO time]
let undoStack = [];   // {id, prev, pos}
let cur = 0, mode = "single", zoom = M.zoom, showNeigh = false, token = 0, stored = true;

function load() {
  try {
    const raw = window.localStorage.getItem(KEY);
    if (raw) {
      const obj = JSON.parse(raw);
      if (obj && obj.scores) scores = obj.scores;
    }
  } catch (e) { stored = false; warn("browser storage unavailable: export before closing"); }
}
function save() {
  try {
    window.localStorage.setItem(KEY, JSON.stringify({ format: M.format, scores: scores }));
  } catch (e) { stored = false; warn("could not save in browser storage: export now"); }
}
function warn(text) { $("warn").textContent = text; }
function nScored() { let k = 0; for (const c of C) if (scores[c.id]) k++; return k; }
function firstUnscored(from) {
  for (let k = 0; k < N; k++) { const j = (from + k) % N; if (!scores[C[j].id]) return j; }
  return -1;
}

function src(b64) { return "data:image/png;base64," + b64; }
function loadImage(b64) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img); img.onerror = reject; img.src = src(b64);
  });
}
function pixels(img) {
  const cv = document.createElement("canvas"); cv.width = img.width; cv.height = img.height;
  const ctx = cv.getContext("2d"); ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, img.width, img.height).data;
}
// Colour composite: blue = first band, red = second, green = their mean;
// blue-grey where either band has no data (transparent pixel).
async function drawComposite(canvas, b64b, b64r, t) {
  const [ib, ir] = await Promise.all([loadImage(b64b), loadImage(b64r)]);
  if (t !== token) return;
  const pb = pixels(ib), pr = pixels(ir);
  canvas.width = ib.width; canvas.height = ib.height;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(ib.width, ib.height), o = out.data;
  for (let k = 0; k < o.length; k += 4) {
    if (pb[k + 3] === 0 || pr[k + 3] === 0) { o[k] = BAD[0]; o[k + 1] = BAD[1]; o[k + 2] = BAD[2]; }
    else { o[k] = pr[k]; o[k + 1] = Math.round((pb[k] + pr[k]) / 2); o[k + 2] = pb[k]; }
    o[k + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}
function sized(el, w, h, z) { el.style.width = (w * z) + "px"; el.style.height = (h * z) + "px"; }
function scoreBadge(id) {
  const s = scores[id];
  return s ? '<span class="score s' + s[0] + '">' + s[0] + "</span>"
           : '<span class="score">&ndash;</span>';
}
const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
function esc(t) { return String(t).replace(/[&<>"]/g, (c) => ENTITIES[c]); }
function tr(label, value) {
  return "<tr><td>" + esc(label) + "</td><td>" + esc(value) + "</td></tr>";
}

function renderHeader() {
  const k = nScored();
  $("progress").textContent = "scored " + k + " of " + N;
  $("bar").firstElementChild.style.width = (100 * k / N) + "%";
  $("position").textContent = "candidate " + (cur + 1) + " of " + N +
    (nLoaded < N ? " (stamps loaded: " + nLoaded + ")" : "");
  $("zoom").textContent = "\u00d7" + zoom;
  if (k === N && stored) warn("all scored: export the scores");
}
function renderSingle() {
  const t = token, c = C[cur], w = M.size[1], h = M.size[0];
  const gb = $("img-b"), gr = $("img-r"), gc = $("img-c");
  [gb, gr, gc].forEach((el) => sized(el, w, h, zoom));
  const ready = S[cur] !== undefined, wait = ready ? "" : " (loading)";
  gb.onload = () => { if (timing.firstStamp === null) timing.firstStamp = performance.now(); };
  if (ready) { gb.src = src(S[cur][0]); gr.src = src(S[cur][1]); }
  else { gb.removeAttribute("src"); gr.removeAttribute("src"); }
  $("cap-b").textContent = M.bands[0] + wait; $("cap-r").textContent = M.bands[1] + wait;
  $("cap-c").textContent = M.bands[0] + "/" + M.bands[1] + " (" + M.stretch + ")";
  if (ready) drawComposite(gc, S[cur][0], S[cur][1], t);
  let rows = "";
  for (const [label, value] of c.info) rows += tr(label, value);
  for (const [label, value] of c.names) rows += tr(label, value);
  if (!c.names.length) rows += tr("names", "none");
  $("info").innerHTML = "<h2>" + esc(M.id_column) + " " + esc(c.id) + " " + scoreBadge(c.id) +
    "</h2><table>" + rows + "</table>";
  const nb = $("neigh");
  if (showNeigh && NB && NB[cur] !== undefined) {
    nb.classList.remove("hidden");
    const nw = M.neigh_size[1], nh = M.neigh_size[0], nz = Math.max(1, Math.round(zoom * w / nw));
    const eb = $("nb-b"), er = $("nb-r"), ec = $("nb-c");
    [eb, er, ec].forEach((el) => sized(el, nw, nh, nz));
    eb.src = src(NB[cur][0]); er.src = src(NB[cur][1]);
    const label = "neighbourhood (" + (nw * M.neigh_bin) + " px" +
      (M.neigh_bin > 1 ? ", binned " + M.neigh_bin + "\u00d7" : "") + ")";
    $("ncap-b").textContent = M.bands[0] + " " + label; $("ncap-r").textContent = M.bands[1];
    $("ncap-c").textContent = M.bands[0] + "/" + M.bands[1];
    drawComposite(ec, NB[cur][0], NB[cur][1], t);
  } else nb.classList.add("hidden");
}
function gridPage() {
  const per = M.grid_columns * 4, start = cur - (cur % per);
  return [start, Math.min(N, start + per)];
}
function renderGrid() {
  const t = token, g = $("grid"), [a, b] = gridPage(), w = M.size[1], h = M.size[0];
  const z = Math.max(1, Math.floor(zoom / 2));
  g.style.gridTemplateColumns = "repeat(" + M.grid_columns + ", max-content)";
  g.innerHTML = "";
  for (let j = a; j < b; j++) {
    const tile = document.createElement("div");
    tile.className = "tile" + (j === cur ? " cur" : ""); tile.dataset.index = j;
    const cv = document.createElement("canvas"); cv.className = "stamp"; sized(cv, w, h, z);
    tile.appendChild(cv);
    const cap = document.createElement("div");
    cap.innerHTML = esc(C[j].id) + " " + scoreBadge(C[j].id);
    tile.appendChild(cap);
    tile.addEventListener("click", () => { cur = j; render(); });
    tile.addEventListener("dblclick", () => { cur = j; mode = "single"; render(); });
    g.appendChild(tile);
    if (S[j] !== undefined) drawComposite(cv, S[j][0], S[j][1], t);
  }
}
function render() {
  token++;
  $("single").classList.toggle("hidden", mode !== "single");
  $("grid").classList.toggle("hidden", mode !== "grid");
  $("b-grid").textContent = mode === "grid" ? "single" : "grid";
  $("b-neigh").disabled = !NB;
  if (mode === "single") renderSingle(); else renderGrid();
  renderHeader();
  $("m31-export").value = "";
}

function visible(a, b) {
  if (mode === "single") return cur >= a && cur < b;
  const [p, q] = gridPage();
  return p < b && a < q;
}
window.m31Stamps = function (start, stamps, neigh) {
  for (let k = 0; k < stamps.length; k++) {
    S[start + k] = stamps[k];
    if (NB) NB[start + k] = neigh[k];
  }
  nLoaded += stamps.length;
  timing.loaded = nLoaded;
  if (nLoaded >= N) timing.allLoaded = performance.now();
  if (visible(start, start + stamps.length)) render(); else renderHeader();
};
function move(step) { cur = Math.max(0, Math.min(N - 1, cur + step)); render(); }
function setScore(value) {
  const id = C[cur].id;
  undoStack.push({ id: id, prev: scores[id] || null, pos: cur });
  scores[id] = [value, new Date().toISOString()];
  save();
  if (cur < N - 1) cur++;
  render();
}
function undo() {
  const last = undoStack.pop();
  if (!last) return;
  if (last.prev) scores[last.id] = last.prev; else delete scores[last.id];
  save(); cur = last.pos; render();
}

function csvField(v) { return '"' + String(v).replace(/"/g, '""') + '"'; }
function exportText() {
  const rows = [];
  for (const c of C) {
    const s = scores[c.id];
    if (s) rows.push((M.id_numeric ? c.id : csvField(c.id)) + "," + s[0] + "," +
                     csvField(M.inspector) + "," + s[1]);
  }
  const head = [
    "# %ECSV 1.0", "# ---", "# delimiter: ','", "# datatype:",
    "# - {name: id, datatype: " + (M.id_numeric ? "int64" : "string") + "}",
    "# - {name: score, datatype: int64}", "# - {name: inspector, datatype: string}",
    "# - {name: time, datatype: string}", "# meta:",
    "#   format: " + M.format, "#   catalog: '" + M.catalog + "'",
    "#   inspector: " + JSON.stringify(M.inspector), "#   n_candidates: " + N,
    "#   n_scored: " + rows.length, "# schema: astropy-2.0", "id,score,inspector,time"];
  return head.concat(rows).join("\n") + "\n";
}
function download() {
  const text = exportText();
  $("m31-export").value = text;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  a.download = M.file_name;
  document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
}
function parseCsvLine(line) {
  const out = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let j = i + 1, v = "";
      while (j < line.length) {
        if (line[j] === '"') { if (line[j + 1] === '"') { v += '"'; j += 2; } else { j++; break; } }
        else v += line[j++];
      }
      out.push(v); i = j + 1;
    } else {
      let j = line.indexOf(",", i);
      if (j < 0) j = line.length;
      out.push(line.slice(i, j)); i = j + 1;
    }
  }
  return out;
}
// Load an exported score file into this page (newer scores win); returns a message.
function importText(text) {
  const lines = text.split(/\r?\n/), head = {}, rows = [];
  for (const line of lines) {
    const m = /^#\s{3}(\w+): (.*)$/.exec(line) || /^# - \{(\w+): (.*)\}$/.exec(line);
    if (m) head[m[1]] = m[2].replace(/^'(.*)'$/, "$1").replace(/^"(.*)"$/, "$1");
    else if (line && line[0] !== "#" && line !== "id,score,inspector,time") rows.push(line);
  }
  const fail = (why) => { warn("not loaded: " + why); return "not loaded: " + why; };
  if (head.format !== M.format) return fail("not a score file of this program");
  if (head.catalog !== M.catalog) return fail("made for another catalogue (" + head.catalog + ")");
  if (head.inspector !== M.inspector) {
    return fail("scores of " + head.inspector + ", not of " + M.inspector);
  }
  if (Number(head.n_scored) !== rows.length) return fail("truncated file");
  const known = new Set(C.map((c) => String(c.id))), add = {};
  for (const row of rows) {
    const f = parseCsvLine(row);
    if (f.length !== 4 || !known.has(f[0]) || !/^[012]$/.test(f[1])) return fail("bad row: " + row);
    add[f[0]] = [Number(f[1]), f[3]];
  }
  let n = 0;
  for (const [id, s] of Object.entries(add)) {
    if (!scores[id] || scores[id][1] < s[1]) { scores[id] = s; n++; }
  }
  save(); render();
  const msg = "loaded " + n + " of " + rows.length + " scores";
  warn(msg);
  return msg;
}
function setZoom(z) { zoom = Math.max(1, Math.min(16, z)); render(); }
function filters() {
  const f = "brightness(" + $("s-bright").value + ") contrast(" + $("s-contrast").value + ")";
  for (const el of document.querySelectorAll(".stamp")) el.style.filter = f;
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t0 = performance.now();
  handleKey(e);
  const dt = performance.now() - t0;
  timing.keys++; timing.keyMsTotal += dt; timing.keyMsMax = Math.max(timing.keyMsMax, dt);
});
function handleKey(e) {
  const cols = mode === "grid" ? M.grid_columns : 1;
  switch (e.key) {
    case "0": case "1": case "2": setScore(Number(e.key)); break;
    case "ArrowRight": move(1); break;
    case "ArrowLeft": move(-1); break;
    case "ArrowDown": move(cols); break;
    case "ArrowUp": move(-cols); break;
    case "PageDown": move(mode === "grid" ? M.grid_columns * 4 : 10); break;
    case "PageUp": move(mode === "grid" ? -M.grid_columns * 4 : -10); break;
    case "Home": move(-N); break;
    case "End": move(N); break;
    case "u": case "U": undo(); break;
    case "n": case "N": showNeigh = !showNeigh; mode = "single"; render(); break;
    case "g": case "G": mode = mode === "grid" ? "single" : "grid"; render(); break;
    case "+": case "=": setZoom(zoom + 1); break;
    case "-": case "_": setZoom(zoom - 1); break;
    case " ": { const j = firstUnscored(cur); if (j >= 0) { cur = j; render(); } break; }
    default: return;
  }
  e.preventDefault();
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
}
$("b-prev").onclick = () => move(-1);
$("b-next").onclick = () => move(1);
$("b-grid").onclick = () => { mode = mode === "grid" ? "single" : "grid"; render(); };
$("b-neigh").onclick = () => { showNeigh = !showNeigh; mode = "single"; render(); };
$("b-zoomin").onclick = () => setZoom(zoom + 1);
$("b-zoomout").onclick = () => setZoom(zoom - 1);
$("b-undo").onclick = undo;
$("b-export").onclick = download;
$("b-import").onclick = () => $("f-import").click();
$("f-import").onchange = (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { importText(String(reader.result)); e.target.value = ""; };
  reader.readAsText(file);
};
$("s-bright").oninput = filters; $("s-contrast").oninput = filters;
new MutationObserver(filters).observe(document.querySelector("main"),
                                      { childList: true, subtree: true });

window.m31Export = exportText;
window.m31Import = importText;
window.m31State = () => ({ cur: cur, id: C[cur].id, mode: mode, zoom: zoom,
                           neighbourhood: showNeigh, nScored: nScored(), scores: scores,
                           key: KEY });
$("title").textContent = M.title;
$("inspector").textContent = M.inspector;
document.title = M.title + " \u2014 " + M.inspector;
load();
const start = firstUnscored(0);
cur = start < 0 ? 0 : start;
render();
})();
"""


def page_parts(*, title, data_json):
    """
    The page around its stamps: ``(head, tail)``.

    *head* holds the style, the body, the data (JSON) and the script; the
    stamp blocks (`stamp_block`) go between *head* and *tail*.
    """
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{_html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{_BODY}\n<script id=\"m31-data\" type=\"application/json\">{data_json}</script>\n"
        f"<script>{_JS}</script>\n"
    )
    return head, "</body>\n</html>\n"


def stamp_block(start, stamps, neigh):
    """One ``<script>`` handing the page the base64 PNGs of candidates from *start*."""
    def arr(pairs):
        return "[" + ",".join(f'["{a}","{b}"]' for a, b in pairs) + "]"

    return (f"<script>m31Stamps({int(start)},{arr(stamps)},"
            f"{'null' if neigh is None else arr(neigh)});</script>\n")
