// The fleet page: polls /api/fleet and redraws the map, the tables, the
// rollouts and the drills in place. Text goes in with textContent only.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const refresh = Number(document.body.dataset.refresh) || 1000;
  const map = document.getElementById("map");
  const top = Number(map.dataset.top), scale = Number(map.dataset.scale);
  const viewW = map.viewBox.baseVal.width, viewH = map.viewBox.baseVal.height;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const badge = (s) => el("span", { class: "badge " + s }, s);
  const pct = (x) => (100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0) + "%";
  const rate = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1)) + " req/s";
  const secs = (ns) => (ns / 1e9).toFixed(0) + "s";

  function drawMap(regions) {
    const g = document.getElementById("markers");
    g.replaceChildren();
    let spare = 0;
    const unplaced = regions.filter((r) => !r.location).length;
    for (const r of regions) {
      let x, y;
      if (r.location) {
        x = (r.location.lon + 180) * scale;
        y = (top - r.location.lat) * scale;
      } else {
        // No location: along the bottom edge.
        x = (viewW * (++spare)) / (unplaced + 1);
        y = viewH - 14;
      }
      const m = svg("g", { class: "region", "data-region": r.name, "data-health": r.health });
      const t = svg("title", {});
      t.textContent = r.name + ": " + r.health;
      m.append(t);
      m.append(svg("circle", { class: "halo", cx: x, cy: y, r: 9 + 40 * Math.sqrt(r.userShare || 0) }));
      m.append(svg("circle", { class: "pin", cx: x, cy: y, r: 7 }));
      const label = svg("text", { x: x + 10, y: y + 4 });
      label.textContent = r.name + (r.userShare ? " · " + pct(r.userShare) : "");
      m.append(label);
      g.append(m);
    }
  }

  function drawRegions(regions) {
    const body = document.querySelector("#regions tbody");
    body.replaceChildren();
    if (!regions.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: 6 }, "No regions yet.")));
    for (const r of regions) {
      const clusters = el("td", {});
      for (const c of r.clusters) {
        clusters.append(el("div", {}, c.name + " ", badge(c.health), c.reason ? el("div", { class: "reason" }, c.reason) : null));
      }
      const models = el("td", {});
      for (const m of r.models || []) {
        models.append(el("div", {}, m.model + " " + m.readyReplicas + "/" + m.desiredReplicas));
      }
      body.append(el("tr", { "data-region": r.name, "data-health": r.health },
        el("td", {}, r.name), el("td", {}, badge(r.health)), clusters, models,
        el("td", {}, rate(r.requestsPerSecond || 0)), el("td", {}, pct(r.userShare || 0))));
    }
  }

  function drawModels(models) {
    const body = document.querySelector("#models tbody");
    body.replaceChildren();
    if (!models.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: 3 }, "No models yet.")));
    for (const m of models) {
      const demand = (m.demand || []).map((d) => d.region + " " + pct(d.share)).join(", ");
      body.append(el("tr", { "data-model": m.namespace + "/" + m.name },
        el("td", {}, m.name), el("td", {}, String(m.readyReplicas)),
        el("td", {}, demand || "—", m.demandSource ? el("span", { class: "reason" }, " (" + m.demandSource.toLowerCase() + ")") : null)));
    }
  }

  function drawRollouts(rollouts) {
    const box = document.getElementById("rollouts");
    box.replaceChildren();
    if (!rollouts.length) box.append(el("p", { class: "empty" }, "No rollouts."));
    const finished = (p) => p === "Succeeded" || p === "RolledBack";
    for (const r of rollouts) {
      const card = el("div", { class: "rollout", "data-rollout": r.namespace + "/" + r.name, "data-phase": r.phase },
        el("h3", {}, r.name + ": " + r.model + " → v" + r.version + (r.stableVersion ? " (from v" + r.stableVersion + ")" : "") + " ", badge(r.phase)));
      const waves = el("div", { class: "waves" });
      r.waves.forEach((w, i) => {
        const cls = finished(r.phase) || i < r.wave ? "wave done" : i === r.wave ? "wave current" : "wave";
        waves.append(el("span", { class: cls }, "wave " + (i + 1) + ": " + w.regions.join(", ")));
      });
      card.append(waves);
      const steps = el("div", { class: "steps" });
      r.steps.forEach((s, i) => {
        const cls = !finished(r.phase) && i === r.step ? "step current" : "step";
        steps.append(el("span", { class: cls }, s.weight + "%" + (s.bake ? " for " + secs(s.bake) : "")));
      });
      card.append(steps);
      if (r.message) card.append(el("div", { class: "reason" }, r.message));
      if (r.verdicts && r.verdicts.length) {
        const ul = el("ul", { class: "verdicts" });
        for (const v of r.verdicts) {
          ul.append(el("li", {}, "wave " + (v.wave + 1) + " step " + (v.step + 1) + ": ", badge(v.result), " " + (v.message || "")));
        }
        card.append(ul);
      }
      box.append(card);
    }
  }

  function timeline(d) {
    const W = 1000, H = 120, pad = 14;
    const n = Math.max(0, ...d.series.map((s) => s.ok.length));
    const s = svg("svg", { class: "timeline", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" });
    if (!n) return s;
    const rows = d.series.length;
    const rowH = (H - pad) / rows;
    d.series.forEach((ser, k) => {
      const peak = Math.max(1, ...ser.ok.map((ok, i) => ok + ser.failed[i]));
      const bw = W / n, base = pad + rowH * (k + 1) - 2;
      for (let i = 0; i < ser.ok.length; i++) {
        const ok = ((rowH - 16) * ser.ok[i]) / peak, bad = ((rowH - 16) * ser.failed[i]) / peak;
        if (ok > 0) s.append(svg("rect", { class: "ok", x: i * bw, y: base - ok, width: Math.max(bw - 0.5, 0.5), height: ok }));
        if (bad > 0) s.append(svg("rect", { class: "failed", x: i * bw, y: base - ok - bad, width: Math.max(bw - 0.5, 0.5), height: bad }));
      }
      const label = svg("text", { x: 4, y: pad + rowH * k + 10 });
      label.textContent = ser.kind + " clients";
      s.append(label);
    });
    for (const [bin, name] of [[d.faultAt, "fault"], [d.healAt, "heal"]]) {
      if (!bin) continue;
      const x = (bin * W) / n;
      s.append(svg("line", { class: "mark", x1: x, x2: x, y1: 0, y2: H }));
      const t = svg("text", { x: x + 3, y: 10 });
      t.textContent = name;
      s.append(t);
    }
    return s;
  }

  function drawDrills(drills) {
    const box = document.getElementById("drills");
    box.replaceChildren();
    if (!drills.length) box.append(el("p", { class: "empty" }, "No drill reports."));
    for (const d of drills) {
      const figures = Object.entries(d.figures || {}).map(([k, v]) => k + " " + v.toFixed(2) + "s").join(" · ");
      box.append(el("div", { class: "drill", "data-drill": d.file },
        el("h3", {}, d.drill + (d.fault ? " (" + d.fault + ")" : "") + " of " + d.region + " — " + new Date(d.written).toLocaleString()),
        el("div", { class: "reason" }, figures || "no figures"),
        timeline(d)));
    }
  }

  function drawProblems(problems) {
    const ul = document.getElementById("problems");
    ul.replaceChildren(...(problems || []).map((p) => el("li", {}, p)));
  }

  const conn = document.getElementById("conn");
  function state(s, text) {
    conn.dataset.state = s;
    conn.textContent = text;
  }

  let generation = 0;
  async function poll() {
    try {
      const res = await fetch("api/fleet", { cache: "no-store" });
      const f = await res.json();
      if (!res.ok) throw new Error(f.error || res.statusText);
      drawMap(f.regions);
      drawRegions(f.regions);
      drawModels(f.models);
      drawRollouts(f.rollouts);
      drawDrills(f.drills);
      drawProblems(f.problems);
      document.getElementById("updated").textContent = "updated " + new Date(f.time).toLocaleTimeString();
      document.body.dataset.generation = String(++generation);
      state("live", "live");
    } catch (e) {
      state("lost", "no answer from the hub: " + e.message);
    }
    setTimeout(poll, refresh);
  }
  poll();
})();
