// The pdmflow dashboard: polls api/state and draws it on canvases. No
// libraries, no build step. Every plot records what it drew in data
// attributes (data-points on a curve's canvas, data-count and data-bins on a
// histogram's, data-natural-width/height on a loaded picture), which the
// browser test reads from the rendered DOM.
"use strict";
(function () {
  const POLL_MS = 1500;
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];

  // The report's values (train_log.csv's columns), grouped; a value of no
  // group goes to "Other".
  const GROUPS = [
    ["Losses", ["g_adv", "d", "d_real", "d_fake", "l1", "noise_reg", "noise_std", "pdm_gnorm", "k_center", "k_smooth", "k_radius", "mode_seek"]],
    ["Validation", ["val_psnr", "val_ssim"]],
    ["The learned distribution (the monitor's measures)", ["k_width", "k_width_std", "k_aniso_std", "k_pair_ratio", "k_fill", "k_hf_excess",
      "noise_level_std", "k_sigma", "k_sigma_std", "k_aniso", "w1_width", "spread_width", "w1_noise", "spread_noise"]],
    ["Time and stream", ["step_s", "wait_s", "pair_age", "pair_age_max"]],
  ];
  const INFO = {
    g_adv: "PDM's adversarial loss (LSGAN, discriminator frozen)",
    d: "discriminator loss (real + fake)", d_real: "discriminator loss on real LR", d_fake: "discriminator loss on fake LR",
    l1: "SR network's L1 loss", noise_reg: "noise regulariser (weighted)", noise_std: "RMS of the PDM's noise",
    pdm_gnorm: "PDM gradient norm", k_center: "kernel centroid prior (unweighted)", k_smooth: "kernel smoothness prior (unweighted)",
    k_radius: "kernel radius prior (unweighted)", mode_seek: "mode-seeking loss (unweighted)",
    val_psnr: "validation PSNR, dB (RGB, border 4)", val_ssim: "validation SSIM (RGB, border 4)",
    k_width: "mean kernel width, HR px", k_width_std: "spread of kernel widths, HR px (collapse: falling toward 0)",
    k_aniso_std: "spread of the anisotropy", k_pair_ratio: "kernel distance per unit of latent distance (one kernel for every z: toward 0)",
    k_fill: "taps filled against a smooth kernel (sparse below 0.3)", k_hf_excess: "energy above LR Nyquist beyond a smooth kernel (aliasing above 0.25)",
    noise_level_std: "spread of the noise level over the batch", k_sigma: "training batch's mean kernel sigma", k_sigma_std: "its spread",
    k_aniso: "training batch's mean anisotropy", w1_width: "Wasserstein-1 to the true widths", spread_width: "learned / true width spread",
    w1_noise: "Wasserstein-1 to the true noise levels", spread_noise: "learned / true noise level spread",
    step_s: "seconds per step", wait_s: "seconds per step waiting for streamed pairs", pair_age: "mean age of the trained pairs' weights, steps",
    pair_age_max: "oldest pair's weights age, steps",
  };
  const THRESHOLDS = { k_fill: 0.3, k_hf_excess: 0.25 };
  const PICTURES = {
    "kernels.png": "Learned kernels: 64 draws of the PDM handed on to producers, each scaled to its own maximum.",
    "lr_samples.png": "Fake LR (top row: the PDM's degradation of HR crops) next to real LR crops (bottom row).",
    "noise.png": "The PDM's noise on the last PDM step's crops: clean LR (blurred and downsampled, top), the noise (mid-gray 0, black and white ±3σ, middle), fake LR (their sum, bottom).",
  };
  const HISTS = [
    ["kernel_width", "Kernel width sqrt(σ_major σ_minor), HR px: the monitor's 64 kernels"],
    ["noise_level", "Noise level (standard deviation over an image): the step's batch"],
  ];
  const STREAM_CURVES = [
    ["pairs_per_s", "pairs/s by producer"],
    ["weights_version", "weights version (producers follow the trainer)"],
    ["lag", "consumer lag, messages"],
    ["data_wait_ms", "trainer's data wait, ms/step"],
    ["pair_age", "pair age, steps"],
  ];

  const $ = (id) => document.getElementById(id);
  let state = null;
  let selected = null; // the run index the user picked; null: the latest
  let lastOK = null;

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(digits || 4)));
  }

  function clock(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const two = (x) => String(x).padStart(2, "0");
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(sec);
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // tickText formats the ticks of one axis with as many decimals as their
  // spacing needs.
  function tickText(ticks, fn) {
    if (fn) return ticks.map(fn);
    const step = ticks.length > 1 ? ticks[1] - ticks[0] : Math.abs(ticks[0]) || 1;
    const big = Math.max.apply(null, ticks.map(Math.abs));
    if (big >= 1e6 || step < 1e-4) return ticks.map((t) => (t === 0 ? "0" : t.toExponential(1)));
    const dec = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
    return ticks.map((t) => t.toFixed(dec));
  }

  function niceTicks(lo, hi, n) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const r = raw / mag;
    const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }

  // canvas2d sizes the canvas to its box at the device's pixel ratio and
  // returns a cleared context in CSS pixels.
  function canvas2d(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(120, c.clientWidth || 260), h = Math.max(60, c.clientHeight || 130);
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "10px system-ui, sans-serif";
    return { ctx, w, h };
  }

  // drawLines draws curves ([{label, pts: [[x, y], ...]}]) with axes and
  // sets data-points to the number of points drawn.
  function drawLines(c, curves, opt) {
    opt = opt || {};
    const { ctx, w, h } = canvas2d(c);
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity, n = 0;
    for (const cv of curves) {
      for (const p of cv.pts) {
        xmin = Math.min(xmin, p[0]); xmax = Math.max(xmax, p[0]);
        ymin = Math.min(ymin, p[1]); ymax = Math.max(ymax, p[1]);
        n++;
      }
    }
    c.dataset.points = String(n);
    c.dataset.curves = String(curves.filter((cv) => cv.pts.length > 0).length);
    if (n === 0) {
      ctx.fillStyle = "#98a2b3";
      ctx.fillText("no data yet", 8, h / 2);
      return;
    }
    if (opt.threshold !== undefined) { ymin = Math.min(ymin, opt.threshold); ymax = Math.max(ymax, opt.threshold); }
    if (ymin === ymax) {
      const d = Math.abs(ymin) * 0.05 || 1;
      ymin -= d; ymax += d;
    } else {
      const pad = (ymax - ymin) * 0.06;
      ymin -= pad; ymax += pad;
    }
    if (xmin === xmax) { xmin -= 1; xmax += 1; }
    const L = 46, R = 14, B = 16;
    // The legend of several curves above the plot, wrapped to its width.
    const legend = [];
    let rows = 0;
    if (curves.length > 1) {
      let x = L + 6;
      curves.forEach((cv, i) => {
        const cw = 18 + ctx.measureText(cv.label).width;
        if (x + cw > w && x > L + 6) { x = L + 6; rows++; }
        legend.push([cv.label, COLORS[i % COLORS.length], x, 1 + 11 * rows]);
        x += cw;
      });
    }
    const T = legend.length ? 16 + 11 * rows : 6;
    const X = (x) => L + (x - xmin) / (xmax - xmin) * (w - L - R);
    const Y = (y) => T + (1 - (y - ymin) / (ymax - ymin)) * (h - T - B);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#e7eaf0";
    ctx.fillStyle = "#667085";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yt = niceTicks(ymin, ymax, 4), ytext = tickText(yt);
    yt.forEach((t, i) => {
      const y = Math.round(Y(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
      ctx.fillText(ytext[i], L - 4, y);
    });
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xt = niceTicks(xmin, xmax, Math.max(3, Math.floor((w - L) / 60))), xtext = tickText(xt, opt.xfmt);
    xt.forEach((t, i) => ctx.fillText(xtext[i], X(t), h - B + 3));
    ctx.strokeStyle = "#98a2b3";
    ctx.beginPath(); ctx.moveTo(L + 0.5, T); ctx.lineTo(L + 0.5, h - B + 0.5); ctx.lineTo(w - R, h - B + 0.5); ctx.stroke();
    if (opt.threshold !== undefined) {
      ctx.save();
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = "#b42318";
      const y = Math.round(Y(opt.threshold)) + 0.5;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
      ctx.restore();
    }
    curves.forEach((cv, i) => {
      const col = COLORS[i % COLORS.length];
      ctx.strokeStyle = col;
      ctx.fillStyle = col;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      cv.pts.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
      ctx.stroke();
      const last = cv.pts[cv.pts.length - 1];
      if (last) { ctx.beginPath(); ctx.arc(X(last[0]), Y(last[1]), 2.5, 0, 2 * Math.PI); ctx.fill(); }
    });
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    for (const [label, col, x, y] of legend) {
      ctx.fillStyle = col;
      ctx.fillRect(x, y + 3, 8, 3);
      ctx.fillText(label, x + 11, y);
    }
  }

  // drawHist draws a histogram of values and sets data-count and data-bins.
  function drawHist(c, values) {
    const { ctx, w, h } = canvas2d(c);
    c.dataset.count = String(values.length);
    if (values.length === 0) {
      c.dataset.bins = "0";
      ctx.fillStyle = "#98a2b3";
      ctx.fillText("no data yet", 8, h / 2);
      return;
    }
    let lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (hi === lo) { const d = Math.abs(lo) * 0.05 || 0.01; lo -= d; hi += d; }
    const bins = Math.max(5, Math.min(24, Math.ceil(Math.sqrt(values.length)) + 2));
    const counts = new Array(bins).fill(0);
    for (const v of values) counts[Math.min(bins - 1, Math.floor((v - lo) / (hi - lo) * bins))]++;
    c.dataset.bins = String(bins);
    const top = Math.max.apply(null, counts);
    const L = 30, R = 8, T = 18, B = 16;
    const X = (x) => L + (x - lo) / (hi - lo) * (w - L - R);
    const bw = (w - L - R) / bins;
    ctx.fillStyle = "#93b4f5";
    ctx.strokeStyle = "#2563eb";
    counts.forEach((k, i) => {
      const bh = k / top * (h - T - B);
      ctx.fillRect(L + i * bw + 1, h - B - bh, bw - 2, bh);
    });
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / values.length);
    ctx.save();
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = "#1d2330";
    ctx.beginPath(); ctx.moveTo(X(mean) + 0.5, T); ctx.lineTo(X(mean) + 0.5, h - B); ctx.stroke();
    ctx.restore();
    ctx.fillStyle = "#667085";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xt = niceTicks(lo, hi, 5), xtext = tickText(xt);
    xt.forEach((t, i) => ctx.fillText(xtext[i], X(t), h - B + 3));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(String(top), L - 4, T + 4);
    ctx.fillText("0", L - 4, h - B);
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    ctx.fillStyle = "#1d2330";
    ctx.fillText("n " + values.length + "   mean " + fmt(mean, 3) + "   std " + fmt(sd, 3) + "   (dashed: mean)", w - R, 2);
  }

  // chartCell returns the chart cell of key inside parent, making it.
  function chartCell(parent, key, title, info) {
    let cell = parent.querySelector('.chart[data-key="' + key + '"]');
    if (!cell) {
      cell = el("div", { class: "chart", "data-key": key });
      const head = el("div", { class: "head" });
      head.append(el("span", { class: "name", title: info || "" }, title), el("span", { class: "last" }));
      cell.append(head, el("canvas", { "data-chart": key }));
      if (info) cell.append(el("div", { class: "note" }, info));
      parent.append(cell);
    }
    return cell;
  }

  function currentRun() {
    if (!state || state.runs.length === 0) return null;
    const i = selected === null ? state.runs.length - 1 : Math.min(selected, state.runs.length - 1);
    return state.runs[i];
  }

  function renderRunBar() {
    const sel = $("run-select");
    const runs = state.runs;
    $("runbar").hidden = runs.length === 0;
    if (sel.options.length !== runs.length) {
      sel.textContent = "";
      runs.forEach((r, i) => sel.append(el("option", { value: String(i) }, (i + 1) + ". " + (r.name || "run") + (r.config ? " (" + r.config + ")" : ""))));
    }
    const run = currentRun();
    if (!run) return;
    sel.value = String(runs.indexOf(run));
    const prog = $("run-progress");
    prog.max = Math.max(1, run.steps);
    prog.value = run.step;
    $("run-info").textContent = "step " + run.step + (run.steps ? " of " + run.steps : "") +
      (run.from_step ? " (resumed at " + run.from_step + ")" : "");
    document.body.dataset.step = String(run.step);
  }

  function renderWarnings(run) {
    const active = run ? run.warnings : [];
    const log = run ? run.warning_log : [];
    $("warnings").hidden = active.length === 0 && log.length === 0;
    if (!run) return;
    $("warnings").classList.toggle("warnings", active.length > 0);
    const ul = $("warnings-active");
    ul.textContent = "";
    if (active.length === 0) ul.append(el("li", {}, "none in force at step " + run.warnings_step));
    for (const w of active) ul.append(el("li", { "data-warning": w.split(":")[0] }, w));
    const lg = $("warnings-log");
    lg.textContent = "";
    for (const e of log) lg.append(el("li", {}, "step " + e.step + ": " + e.text));
  }

  function renderTraining(run) {
    const keys = run ? Object.keys(run.series) : [];
    $("training").hidden = keys.length === 0;
    const box = $("charts");
    const groups = GROUPS.map((g) => [g[0], g[1].filter((k) => keys.includes(k))]);
    const known = new Set(GROUPS.flatMap((g) => g[1]));
    groups.push(["Other", keys.filter((k) => !known.has(k)).sort()]);
    // Rebuild when the run's set of values changes (another run picked, a
    // new value reported).
    const sig = (run ? run.name + "|" + run.started : "") + "|" + keys.slice().sort().join(",");
    if (box.dataset.sig !== sig) {
      box.textContent = "";
      box.dataset.sig = sig;
      for (const [title, ks] of groups) {
        if (ks.length === 0) continue;
        const g = el("div", { class: "group" });
        const inner = el("div", { class: "group-charts" });
        g.append(el("h3", {}, title), inner);
        box.append(g);
        for (const k of ks) chartCell(inner, k, k, INFO[k]);
      }
    }
    for (const k of keys) {
      const cell = box.querySelector('.chart[data-key="' + k + '"]');
      const pts = run.series[k];
      drawLines(cell.querySelector("canvas"), [{ label: k, pts: pts }], { threshold: THRESHOLDS[k] });
      const last = pts[pts.length - 1];
      cell.querySelector(".last").textContent = last ? fmt(last[1]) + " @ " + last[0] : "";
    }
  }

  function renderPictures() {
    const pics = state.pictures || {};
    const names = Object.keys(PICTURES).filter((n) => pics[n]).concat(Object.keys(pics).filter((n) => !PICTURES[n]).sort());
    $("pictures-section").hidden = names.length === 0;
    const box = $("pictures");
    let step = -1, runName = "";
    for (const name of names) {
      const p = pics[name];
      let fig = box.querySelector('figure[data-name="' + name + '"]');
      if (!fig) {
        fig = el("figure", { "data-name": name });
        const img = el("img", { "data-picture": name, alt: name });
        img.addEventListener("load", () => {
          img.dataset.naturalWidth = String(img.naturalWidth);
          img.dataset.naturalHeight = String(img.naturalHeight);
          img.dataset.loadedVersion = img.dataset.version;
          // Small pictures (tiny crops) magnified by a whole factor, pixels kept sharp.
          const k = Math.max(1, Math.min(4, Math.floor(360 / img.naturalWidth)));
          img.style.width = k * img.naturalWidth + "px";
        });
        fig.append(img, el("figcaption"));
        box.append(fig);
      }
      const img = fig.querySelector("img");
      if (img.dataset.version !== String(p.version)) {
        img.dataset.version = String(p.version);
        img.src = "api/picture/" + encodeURIComponent(name) + "?v=" + p.version;
      }
      fig.querySelector("figcaption").textContent = name + ", step " + p.step + ": " + (PICTURES[name] || "");
      if (p.step > step) { step = p.step; runName = p.run; }
    }
    $("pictures-step").textContent = names.length ? "latest, step " + step + (runName ? " of " + runName : "") : "";
  }

  function renderDistribution(run) {
    const smp = run ? run.samples : {};
    const have = HISTS.filter((q) => smp[q[0]]);
    $("dist-section").hidden = have.length === 0;
    const box = $("histograms");
    let step = -1;
    for (const [q, title] of have) {
      let cell = box.querySelector('.hist[data-quantity="' + q + '"]');
      if (!cell) {
        cell = el("div", { class: "hist", "data-quantity": q });
        cell.append(el("div", { class: "note" }, title), el("canvas", { "data-hist": q }));
        box.append(cell);
      }
      drawHist(cell.querySelector("canvas"), smp[q].values);
      step = Math.max(step, smp[q].step);
    }
    $("dist-step").textContent = have.length ? "at step " + step : "";
  }

  function cell(tr, v, bad) {
    const td = el("td", {}, v);
    if (bad) td.className = "bad";
    tr.append(td);
  }

  function renderStream() {
    const s = state.stream;
    $("stream-section").hidden = !s || (s.producers.length === 0 && s.trainers.length === 0);
    if (!s) return;
    $("stream-note").textContent = (s.error ? "registry: " + s.error + "; " : "") + "rates and means over the last 5 s";
    $("no-producers").hidden = s.producers.length > 0;
    $("producers").hidden = s.producers.length === 0;
    let body = $("producers").tBodies[0];
    body.textContent = "";
    for (const p of s.producers) {
      const tr = el("tr", { "data-producer": p.id });
      if (p.run) tr.dataset.run = p.run;
      tr.dataset.pairsPerS = p.pairs_per_s === null ? "" : String(p.pairs_per_s);
      cell(tr, (p.run ? p.run + "/" : "") + p.id);
      cell(tr, fmt(p.pairs_per_s, 3));
      cell(tr, String(p.pairs));
      cell(tr, String(p.weights_version));
      cell(tr, String(p.lag));
      cell(tr, String(p.stalls));
      cell(tr, p.stalled === null ? "—" : Math.round(100 * p.stalled) + "%");
      cell(tr, p.generate_s === null ? "—" : fmt(1000 * p.generate_s, 3));
      cell(tr, fmt(p.inflight_bytes / 1048576, 2) + " MiB");
      cell(tr, String(p.publish_errors), p.publish_errors > 0);
      cell(tr, String(p.reload_failures), p.reload_failures > 0);
      body.append(tr);
    }
    $("no-trainer").hidden = s.trainers.length > 0;
    $("trainers").hidden = s.trainers.length === 0;
    body = $("trainers").tBodies[0];
    body.textContent = "";
    for (const t of s.trainers) {
      const tr = el("tr", { "data-trainer": t.run || "trainer" });
      tr.dataset.dataWaitS = t.data_wait_s === null ? "" : String(t.data_wait_s);
      cell(tr, t.run || "trainer");
      cell(tr, String(t.steps));
      cell(tr, fmt(t.steps_per_s, 3));
      cell(tr, fmt(t.pairs_per_s, 3));
      cell(tr, t.data_wait_s === null ? "—" : fmt(1000 * t.data_wait_s, 3));
      cell(tr, fmt(t.pair_age, 3));
      cell(tr, String(t.lag));
      cell(tr, String(t.pool));
      cell(tr, String(t.weights_version));
      cell(tr, String(t.bad_messages), t.bad_messages > 0);
      cell(tr, String(t.duplicates), t.duplicates > 0);
      cell(tr, String(t.redeliveries));
      body.append(tr);
    }
    const box = $("stream-charts");
    for (const [name, title] of STREAM_CURVES) {
      const h = s.history[name];
      if (!h) continue;
      const c = chartCell(box, "stream-" + name, title, "over minutes:seconds since the dashboard started");
      const labels = Object.keys(h).sort();
      drawLines(c.querySelector("canvas"), labels.map((l) => ({ label: l, pts: h[l] })), { xfmt: clock });
    }
  }

  function render() {
    if (!state) return;
    document.title = state.title + " · pdmflow dashboard";
    $("title").textContent = state.title;
    document.body.dataset.runs = String(state.runs.length);
    renderRunBar();
    const run = currentRun();
    renderWarnings(run);
    renderTraining(run);
    renderPictures();
    renderDistribution(run);
    renderStream();
    $("empty").hidden = state.runs.length > 0 || !!(state.stream && (state.stream.producers.length || state.stream.trainers.length));
  }

  async function poll() {
    try {
      const r = await fetch("api/state", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      state = await r.json();
      lastOK = new Date();
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
      const st = $("status");
      st.className = "status live";
      st.textContent = "live · " + lastOK.toLocaleTimeString();
      render();
    } catch (e) {
      const st = $("status");
      st.className = "status lost";
      st.textContent = "no answer" + (lastOK ? " since " + lastOK.toLocaleTimeString() : "") + " (the process may have ended)";
    }
    setTimeout(poll, POLL_MS);
  }

  $("run-select").addEventListener("change", (ev) => {
    const i = Number(ev.target.value);
    selected = state && i === state.runs.length - 1 ? null : i;
    render();
  });
  let resize = null;
  window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(render, 100); });
  poll();
})();
