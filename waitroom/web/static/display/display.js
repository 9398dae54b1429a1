// Browser call display: renders the office state, follows /api/stream, announces calls in order.
"use strict";
(function () {
  const me = document.currentScript;
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const L = boot.labels;
  const zone = boot.zone;
  const blinkMs = 10000;
  let state = boot.state;
  let live = [];            // call events not yet in a state snapshot
  const seen = new Set();   // event seqs (QoS 1 may deliver twice)
  let blinkKey = null, blinkUntil = 0, online = !!state;
  document.body.dataset.lang2 = boot.lang2 ? "1" : "0";

  const fill = (tpl, values) => tpl.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : ""));
  const t = (key, lang, values) => fill((L[key] && (L[key][lang] || L[key].de)) || key, values || {});
  const pick = (names, lang) => (names && (names[lang] || names.de)) || "";
  const key = (c) => c.ticket + "|" + c.counter + "|" + Number(c.ts).toFixed(3);
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; return e; };

  function counters() {
    const out = {};
    for (const c of (state && state.counters) || []) out[c.id] = c;
    return out;
  }

  function calls() {
    const cs = counters();
    const merged = new Map();
    for (const c of live) merged.set(key(c), c);
    for (const c of (state && state.calls) || []) {
      const info = cs[c.counter] || {};
      if (zone && info.zone !== zone) continue;
      if (!merged.has(key(c))) merged.set(key(c), Object.assign({ counter_name: info.name }, c));
    }
    return [...merged.values()].sort((a, b) => b.ts - a.ts).slice(0, boot.recent + 1);
  }

  function render() {
    const list = calls();
    const hero = document.getElementById("hero");
    hero.replaceChildren();
    const newest = list[0];
    hero.className = "hero" + (newest ? " highlight" : "") +
      (newest && key(newest) === blinkKey && Date.now() < blinkUntil ? " blink" : "");
    if (newest) {
      const label = newest.recall ? "display.recall" : "display.now_calling";
      hero.append(el("div", "label", t(label, "de") + (boot.lang2 ? "  ·  " + t(label, "en") : "")),
        el("div", "ticket", newest.ticket),
        el("div", "go", t("display.please_go", "de") + (boot.lang2 ? "  ·  " + t("display.please_go", "en") : "")),
        el("div", "counter", pick(newest.counter_name, "de")),
        el("div", "counter-en", pick(newest.counter_name, "en")));
      hero.dataset.ticket = newest.ticket;
    } else {
      hero.append(el("div", "wait", t("display.no_calls", "de")), el("div", "wait-en", t("display.no_calls", "en")));
      delete hero.dataset.ticket;
    }
    const ol = document.getElementById("recent-list");
    ol.replaceChildren(...list.slice(1).map((c) => {
      const li = el("li");
      const name = el("span", "counter", pick(c.counter_name, "de"));
      name.append(el("span", "en", pick(c.counter_name, "en")));
      li.append(el("span", "ticket", c.ticket), name);
      return li;
    }));
    const cs = counters();
    const served = new Set();
    for (const c of Object.values(cs)) if (!zone || c.zone === zone) for (const s of c.services || []) served.add(s);
    const waits = document.getElementById("waits-list");
    waits.replaceChildren(...((state && state.services) || []).filter((s) => !zone || served.has(s.id)).map((s) => {
      const d = el("div");
      let info = s.intake_open === false ? t("display.intake_closed", "de")
        : t("display.waiting_count", "de", { count: s.waiting });
      if (s.intake_open !== false && s.waiting && s.eta_min != null) info += "  ·  " + t("wait.minutes", "de", { minutes: s.eta_min });
      d.append(el("div", "name", (s.prefix ? s.prefix + "  " : "") + pick(s.name, "de")),
        el("div", "name-en", pick(s.name, "en")), el("div", "info", info));
      return d;
    }));
    if (state && state.name) document.getElementById("office").textContent = state.name;
    document.getElementById("offline").hidden = online;
  }

  function tick() {
    const now = new Date();
    document.getElementById("time").textContent = now.toLocaleTimeString("de-DE", { hour: "2-digit", minute: "2-digit" });
    document.getElementById("date").textContent = now.toLocaleDateString("de-DE");
    const hero = document.getElementById("hero");
    if (hero.classList.contains("blink") && Date.now() >= blinkUntil) render();
  }

  // -- sound: gong, then the speech (a WAV from the server, else the browser's speechSynthesis), in order
  const queue = [];
  let playing = false;
  let unlocked = false;
  const soundButton = document.getElementById("sound-on");

  function play(url) {
    return new Promise((resolve, reject) => {
      const a = new Audio(url);
      a.onended = () => resolve();
      a.onerror = () => reject(new Error("cannot play " + url));
      a.play().then(() => { unlocked = true; }, (err) => reject(err));
    });
  }

  function speakInBrowser(text, lang) {
    return new Promise((resolve) => {
      if (!("speechSynthesis" in window)) return resolve();
      const u = new SpeechSynthesisUtterance(text);
      u.lang = lang === "de" ? "de-DE" : "en-GB";
      u.onend = u.onerror = () => resolve();
      window.speechSynthesis.speak(u);
    });
  }

  function spokenTicket(number, lang) {
    const m = /^([A-Z])0*(\d+)$/.exec(number);
    return m ? t("announce.ticket", lang, { letter: m[1], number: m[2] }) : number;
  }

  async function announce(c) {
    await play(me.dataset.gong);
    if (boot.sound !== "1") return;
    for (const lang of boot.speak) {
      const url = me.dataset.speech + "?" + new URLSearchParams({ ticket: c.ticket, counter: c.counter, lang,
        recall: c.recall ? "1" : "0" });
      try { await play(url); } catch (err) {
        const text = t(c.recall ? "announce.recall" : "announce.call", lang,
          { ticket: spokenTicket(c.ticket, lang), counter: pick(c.spoken, lang) });
        await speakInBrowser(text, lang);
      }
    }
  }

  async function drain() {
    if (playing) return;
    playing = true;
    while (queue.length) {
      try { await announce(queue[0]); queue.shift(); } catch (err) {
        if (err && err.name === "NotAllowedError") { soundButton.hidden = false; break; }  // needs a click
        queue.shift();
      }
    }
    playing = false;
  }

  soundButton.addEventListener("click", () => { soundButton.hidden = true; drain(); });

  // -- live updates
  function connect() {
    const es = new EventSource("/api/stream");
    es.onopen = () => { online = true; render(); };
    es.onerror = () => { online = false; render(); };
    es.addEventListener("state", (e) => {
      state = JSON.parse(e.data);
      online = true;
      live = live.filter((c) => typeof c.seq === "number" && c.seq > (state.seq || 0));
      render();
    });
    es.addEventListener("call", (e) => {
      const c = JSON.parse(e.data);
      if (typeof c.seq === "number") { if (seen.has(c.seq)) return; seen.add(c.seq); }
      if (zone && c.zone !== zone) return;
      live.push(c);
      blinkKey = key(c);
      blinkUntil = Date.now() + blinkMs;
      render();
      if (boot.sound !== "0") { queue.push(c); drain(); }
    });
  }

  render();
  tick();
  setInterval(tick, 1000);
  connect();
  window.waitroomDisplay = { calls, queue, get online() { return online; }, get unlocked() { return unlocked; } };
})();
