// voxhub dashboard: live figures, the throughput chart, and the transcript player.
// Hand-written, no framework, no dependencies. Every value is written with
// textContent or setAttribute (never innerHTML), so nothing from the store is parsed as markup.
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function fmt(value, kind) {
    if (value === null || value === undefined || value === "") { return "–"; }
    switch (kind) {
      case "when": {
        var d = new Date(value * 1000);
        return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
          pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
      }
      case "seconds": {
        var s = Number(value);
        if (s < 1) { return s.toFixed(2) + " s"; }
        if (s < 60) { return s.toFixed(1) + " s"; }
        var m = Math.floor(Math.round(s) / 60), r = Math.round(s) % 60;
        if (m < 60) { return m + " min " + pad(r) + " s"; }
        return Math.floor(m / 60) + " h " + pad(m % 60) + " min";
      }
      case "percent": return value + "%";
      case "share": return Math.round(Number(value) * 100) + "%";
      case "rate": return value + " per minute";
      case "json": return JSON.stringify(value);
      default: return String(value);
    }
  }

  function fill(pattern, data) {
    var missing = false;
    var text = pattern.replace(/\{(\w+)\}/g, function (_, key) {
      var v = data[key];
      if (v === null || v === undefined) { missing = true; return ""; }
      return encodeURIComponent(String(v));
    });
    return missing ? null : text;
  }

  // --- the throughput chart (inline SVG bars) ------------------------------------------

  function drawChart(svg, series) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    if (!series || !series.bars) { return; }
    var bars = series.bars, n = bars.length, top = Math.max.apply(null, bars.concat([1]));
    var w = 400 / n;
    var base = document.createElementNS(SVG, "line");
    base.setAttribute("x1", "0"); base.setAttribute("x2", "400");
    base.setAttribute("y1", "119"); base.setAttribute("y2", "119");
    base.setAttribute("class", "axis");
    svg.appendChild(base);
    bars.forEach(function (count, i) {
      if (!count) { return; }
      var h = Math.max(2, (count / top) * 110);
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * w + w * 0.1));
      rect.setAttribute("width", String(w * 0.8));
      rect.setAttribute("y", String(119 - h));
      rect.setAttribute("height", String(h));
      rect.setAttribute("class", "bar");
      var tip = document.createElementNS(SVG, "title");
      tip.textContent = count + " finished from " + fmt(series.start + i * series.width, "when");
      rect.appendChild(tip);
      svg.appendChild(rect);
    });
  }

  function chartText(series) {
    if (!series || !series.bars) { return "No inputs finished yet."; }
    var total = series.bars.reduce(function (a, b) { return a + b; }, 0);
    var peak = Math.max.apply(null, series.bars);
    return total + " inputs finished since " + fmt(series.start, "when") + "; at most " + peak +
      " in one interval of " + fmt(series.width, "seconds") + ".";
  }

  // --- tables and lists rebuilt from JSON ----------------------------------------------

  function buildRow(template, data) {
    var row = template.content.firstElementChild.cloneNode(true);
    var nodes = [row].concat(Array.prototype.slice.call(row.querySelectorAll("*")));
    nodes.forEach(function (el) {
      var f = el.getAttribute("data-f");
      if (f) { el.textContent = fmt(data[f], el.getAttribute("data-format")); }
      var href = el.getAttribute("data-href");
      if (href) { var url = fill(href, data); if (url) { el.setAttribute("href", url); } }
      var cls = el.getAttribute("data-class");
      if (cls) { var c = fill(cls, data); if (c) { el.classList.add(c); } }
      var val = el.getAttribute("data-value");
      if (val) { el.setAttribute("value", String(data[val] || 0)); }
    });
    return row;
  }

  function updateRows(body, rows) {
    var template = document.getElementById(body.getAttribute("data-template"));
    var keyName = body.getAttribute("data-key");
    if (!template || !Array.isArray(rows)) { return; }
    var signature = JSON.stringify(rows);
    if (body.getAttribute("data-sig") === signature) { return; }
    // Keep the keyboard focus where it was: same row, same position in it.
    var active = document.activeElement, focusKey = null, focusIndex = -1;
    if (active && body.contains(active)) {
      var tr = active.closest("[data-key]");
      if (tr) {
        focusKey = tr.getAttribute("data-key");
        focusIndex = Array.prototype.indexOf.call(tr.querySelectorAll("a, button, input"), active);
      }
    }
    var fresh = document.createDocumentFragment();
    rows.forEach(function (data) {
      var row = buildRow(template, data);
      row.setAttribute("data-key", String(data[keyName]));
      fresh.appendChild(row);
    });
    while (body.firstChild) { body.removeChild(body.firstChild); }
    body.appendChild(fresh);
    body.setAttribute("data-sig", signature);
    if (focusKey !== null) {
      var again = body.querySelector('[data-key="' + CSS.escape(focusKey) + '"]');
      var target = again && again.querySelectorAll("a, button, input")[focusIndex];
      if (target) { target.focus(); }
    }
  }

  function update(data) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var v = get(data, el.getAttribute("data-live"));
      if (v === undefined) { return; }
      el.textContent = fmt(v, el.getAttribute("data-format"));
      var prefix = el.getAttribute("data-live-href");
      if (prefix && v) { el.setAttribute("href", prefix + encodeURIComponent(v)); }
    });
    document.querySelectorAll("[data-live-value]").forEach(function (el) {
      var v = get(data, el.getAttribute("data-live-value"));
      if (v !== undefined && v !== null) { el.value = Number(v); }
    });
    document.querySelectorAll("[data-chart]").forEach(function (svg) {
      drawChart(svg, get(data, svg.getAttribute("data-chart")));
    });
    document.querySelectorAll("[data-chart-text]").forEach(function (el) {
      el.textContent = chartText(get(data, el.getAttribute("data-chart-text")));
    });
    document.querySelectorAll("[data-rows]").forEach(function (body) {
      updateRows(body, get(data, body.getAttribute("data-rows")));
    });
  }

  function startPolling() {
    var api = document.body.getAttribute("data-api");
    if (!api) { return; }
    var every = Number(document.body.getAttribute("data-poll-ms")) || 2000;
    var status = document.getElementById("live-status");
    var polls = 0;
    function poll() {
      fetch(api, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json();
        })
        .then(function (data) {
          update(data);
          polls += 1;
          document.body.setAttribute("data-polls", String(polls));
          if (status) { status.textContent = "Updated " + fmt(Date.now() / 1000, "when") + "."; }
        })
        .catch(function (err) {
          if (status) { status.textContent = "Live updates paused (" + err.message + "); retrying."; }
        })
        .then(function () { setTimeout(poll, every); });
    }
    poll();
  }

  // --- the transcript player -----------------------------------------------------------

  function startPlayer() {
    var audio = document.getElementById("audio");
    var words = Array.prototype.slice.call(document.querySelectorAll(".transcript .w"));
    var toggle = document.getElementById("show-confidence");
    var box = document.getElementById("transcript");
    if (toggle && box) {
      toggle.addEventListener("change", function () {
        box.classList.toggle("show-confidence", toggle.checked);
      });
    }
    if (!words.length) { return; }
    var times = words.map(function (w) {
      return { start: parseFloat(w.getAttribute("data-start")), end: parseFloat(w.getAttribute("data-end")) };
    });
    var current = null;

    function wordAt(t) {  // the last word that started at or before t (binary search)
      var lo = 0, hi = times.length - 1, found = -1;
      while (lo <= hi) {
        var mid = (lo + hi) >> 1;
        if (!(times[mid].start > t)) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
      }
      if (found < 0) { return null; }
      var end = times[found].end;
      // Between words (a pause longer than the word) nothing is highlighted.
      return isNaN(end) || t <= end + 0.25 ? words[found] : null;
    }

    function highlight(word) {
      if (word === current) { return; }
      if (current) { current.classList.remove("current"); current.removeAttribute("aria-current"); }
      current = word;
      if (word) {
        word.classList.add("current");
        word.setAttribute("aria-current", "true");
      }
    }

    if (audio) {
      var tick = function () {
        highlight(wordAt(audio.currentTime));
        if (!audio.paused) { window.requestAnimationFrame(tick); }
      };
      audio.addEventListener("timeupdate", function () { highlight(wordAt(audio.currentTime)); });
      audio.addEventListener("seeked", function () { highlight(wordAt(audio.currentTime)); });
      audio.addEventListener("play", function () { window.requestAnimationFrame(tick); });
    }
    words.forEach(function (w, i) {
      w.addEventListener("click", function () {
        var start = times[i].start;
        if (!audio || isNaN(start)) { highlight(w); return; }
        audio.currentTime = start;
        highlight(w);
        var playing = audio.play();
        if (playing && playing.catch) { playing.catch(function () { /* paused by the user agent */ }); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startPolling();
    startPlayer();
  });
})();
