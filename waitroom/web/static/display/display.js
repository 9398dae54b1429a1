// Browser call display: renders the office state, follows /api/stream, announces calls in order.
"use strict";
(function () {
  const me = document.currentScript;
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const L = boot.labels;
  const zone = boot.zone;
  const blinkMs = boot.blink_ms != null ? boot.blink_ms : 10000;
  const keepMs = boot.keep_ms != null ? boot.keep_ms : 20000;
  let state = boot.state;
  let live = [];            // call events not yet in a state snapshot
  const seen = new Set();   // event seqs (QoS 1 may deliver twice)
  let blinkKey = null, blinkUntil = 0;
  // the page shows the office as current only while its stream is up, the controller online and the web app
  // on the broker (the stream's "controller" and "link" events); else the offline sign, as on the Pi board
  let streamUp = !!state, heard = 0;
  const office = Object.assign({ controller: true, link: true }, boot.office || {});
  const isOnline = () => streamUp && office.controller && office.link;
  document.body.dataset.lang2 = boot.lang2 ? "1" : "0";

  const langs = boot.langs && boot.langs.length ? boot.langs : ["de", "en"];
  const L1 = langs[0], L2 = boot.lang2 && langs.length > 1 ? langs[1] : null;
  const rtl = new Set(boot.rtl || ["ar"]);
  const fill = (tpl, values) => tpl.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : ""));
  // a plural message ({forms, index}, waitroom/web/display.py) takes the form of the count n
  const form = (tpl, n) => {
    if (typeof tpl === "string") return tpl;
    const i = Math.abs(Math.trunc(Number(n) || 0));
    return tpl.forms[tpl.index[i < 200 ? i : 100 + (i % 100)]] || tpl.forms[tpl.forms.length - 1];
  };
  // a count or minutes in a sentence, as the page's language writes numbers (the server's
  // waitroom.i18n.fmt_number: CLDR, "1.000" in German, "1 000" in Russian, Latin digits in Arabic too)
  const numberFmt = (() => {
    const opts = { numberingSystem: "latn" };
    try { return new Intl.NumberFormat(document.documentElement.lang || "de", opts); }
    catch (e) { return new Intl.NumberFormat("de", opts); }  // a language tag the browser does not take
  })();
  const num = (n) => (typeof n === "number" && isFinite(n) ? numberFmt.format(n) : n);
  const t = (key, lang, values, n) => fill(form((L[key] && (L[key][lang] || L[key].de)) || key, n), values || {});
  const pick = (names, lang) => (names && (names[lang] || names.de)) || "";
  // the language a name is shown in: German when the office has it in German only (marked so, left to right)
  const nameLang = (names, lang) => (names && names[lang] ? lang : "de");
  const key = (c) => c.ticket + "|" + c.counter + "|" + Number(c.ts).toFixed(3);
  const el = (tag, cls, text, lang) => { const e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    if (lang) { e.lang = lang; e.dir = rtl.has(lang) ? "rtl" : "ltr"; }
    return e; };
  // one text per screen language, each marked with the language it is in (langOf: a name may be German only);
  // the second only when it says something else
  const both = (cls, textOf, langOf) => {
    const mark = langOf || ((x) => x);
    const first = textOf(L1), out = [el("div", cls + " l1 clamp", first, mark(L1))];
    if (L2) { const second = textOf(L2); if (second && second !== first) out.push(el("div", cls + " l2 clamp", second, mark(L2))); }
    return out;
  };
  const named = (cls, names) => both(cls, (x) => pick(names, x), (x) => nameLang(names, x));

  // -- long words: a kiosk chromium has no hyphenation dictionary, so a word wider than its line gets soft
  // hyphens (U+00AD) where the syllable rule of waitroom/hyphen.py (syllable_break, ported here; its letters
  // come from the server) allows a break; the browser breaks there and shows the hyphen, as the Pi board does.
  // A word that fits is left whole; right-to-left text is never broken inside a word.
  const HY = boot.hyphen || { vowels: "", onsets: [] };
  const vowels = new Set(Array.from(HY.vowels)), onsets = new Set(HY.onsets);
  const isLetter = (ch) => /^\p{L}$/u.test(ch);
  const onset = (cluster) => cluster.length === 1 || onsets.has(cluster.toLowerCase());
  function syllableBreak(w, i) {  // w: the word's characters (code points)
    if (i < 2 || w.length - i < 2 || !w.slice(i - 2, i + 2).every(isLetter) || vowels.has(w[i])) return false;
    let j = i;
    while (j < w.length && isLetter(w[j]) && !vowels.has(w[j])) j++;
    if (j === w.length || !isLetter(w[j])) return false;  // no vowel follows: no syllable starts here
    return onset(w.slice(i, j).join("")) && (vowels.has(w[i - 1]) || !onset(w.slice(i - 1, j).join("")));
  }
  const syllableBreaks = (word) => { const w = Array.from(word); return w.map((_, i) => i).filter((i) => syllableBreak(w, i)); };
  function hyphenate(root) {
    for (const e of root.querySelectorAll(".clamp")) {
      if (getComputedStyle(e).direction === "rtl") continue;
      const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        // a word the browser had to split across two lines (it did not fit a line, with the service
        // letter before it) is broken between syllables instead
        const long = new Set();
        for (const m of n.data.matchAll(/[^\s\u00ad]+/g)) {
          const r = document.createRange();
          r.setStart(n, m.index);
          r.setEnd(n, m.index + m[0].length);
          if (r.getClientRects().length > 1) long.add(m[0]);
        }
        if (!long.size) continue;
        n.data = n.data.replace(/[^\s\u00ad]+/g, (word) => {
          if (!long.has(word)) return word;
          const w = Array.from(word);
          return w.map((ch, i) => (syllableBreak(w, i) ? "\u00ad" : "") + ch).join("");
        });
      }
    }
  }

  function counters() {
    const out = {};
    for (const c of (state && state.counters) || []) out[c.id] = c;
    return out;
  }

  // -- the board and the announcements agree, as on the Pi board (displays/board.py): the large panel shows
  // the call being announced (between two announcements the one before), else the newest; a call never leaves
  // the screen while it waits for its announcement, nor keep_called_s after it (without sound: after it came),
  // so in a burst the list grows (lower rows, then a second column) and highlights the calls still to come.
  let current = null, sounding = false;  // the key of the call announced now (or just before)
  const kept = new Map();                // key -> shown at least until (ms)
  const waiting = () => queue.filter((q) => !q.held).map((q) => key(q.call));  // not those waiting for a click
  const held = (k) => waiting().includes(k) || k === current || (kept.get(k) || 0) > Date.now();

  function calls() {
    const cs = counters();
    const merged = new Map();
    for (const c of live) merged.set(key(c), c);
    for (const c of (state && state.calls) || []) {
      const info = cs[c.counter] || {};
      if (zone && info.zone !== zone) continue;
      if (!merged.has(key(c))) merged.set(key(c), Object.assign({ counter_name: info.name }, c));
    }
    const all = [...merged.values()].sort((a, b) => b.ts - a.ts);
    const next = waiting();
    let hero = null;
    if (current && merged.has(current) && (sounding || next.length)) hero = merged.get(current);
    else if (!sounding) hero = next.map((k) => merged.get(k)).find(Boolean) || null;
    hero = hero || all[0];
    if (!hero) return [];
    // one row per ticket and counter (a recall and its call are one row; none for the panel's call)
    const rows = new Map(), keep = new Set(), pending = new Set(), serving = new Map();
    for (const c of all) {
      const where = c.ticket + "|" + c.counter;
      if (!serving.has(c.counter)) serving.set(c.counter, c.ticket);
      if (where === hero.ticket + "|" + hero.counter) continue;
      if (!rows.has(where)) rows.set(where, c);
      if (serving.get(c.counter) !== c.ticket && key(c) !== current) continue;  // its counter moved on
      if (held(key(c))) keep.add(where);
      if (next.includes(key(c))) pending.add(where);
    }
    const others = [...rows.keys()].filter((w) => !keep.has(w)).slice(0, Math.max(0, boot.recent - keep.size));
    const listed = [...rows].filter(([w]) => keep.has(w) || others.includes(w))
      .map(([w, c]) => Object.assign({}, c, { pending: pending.has(w) }));
    return [hero, ...listed];
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
      const line = (k) => [L1, L2].filter(Boolean).map((x) => t(k, x)).filter((v, i, a) => a.indexOf(v) === i);
      hero.append(el("div", "label clamp", line(label).join("  ·  ")),
        el("div", "ticket", newest.ticket),
        el("div", "go clamp", line("display.please_go").join("  ·  ")),
        ...named("counter", newest.counter_name));
      // the citizen's own language, when the screen does not show it anyway
      const own = newest.lang;
      if (own && own !== L1 && own !== L2 && L[label] && L[label][own]) {
        hero.append(el("div", "own clamp", t("display.please_go", own) + " " + pick(newest.counter_name, own), own));
      }
      if (hero.children.length > 5) hero.classList.add("more");  // a second name or the citizen's language
      hero.dataset.ticket = newest.ticket;
    } else {
      hero.append(...both("wait", (x) => t("display.no_calls", x)));
      delete hero.dataset.ticket;
    }
    const ol = document.getElementById("recent-list");
    // more calls than rows: lower rows (a smaller number, still over 3 % of the screen), then more columns
    const count = Math.max(1, boot.recent, list.length - 1), perColumn = 10;
    const cols = Math.ceil(count / perColumn);
    ol.style.setProperty("--rows", String(Math.ceil(count / cols)));
    ol.style.setProperty("--cols", String(cols));
    ol.classList.toggle("dense", count > Math.max(6, boot.recent));
    ol.replaceChildren(...list.slice(1).map((c) => {
      const li = el("li", c.pending ? "pending" : "");
      const name = el("div", "counter");
      name.append(...named("name", c.counter_name));
      li.append(el("span", "ticket", c.ticket), name);
      return li;
    }));
    const cs = counters();
    const served = new Set();
    for (const c of Object.values(cs)) if (!zone || c.zone === zone) for (const s of c.services || []) served.add(s);
    const waits = document.getElementById("waits-list");
    const shown = ((state && state.services) || []).filter((s) => !zone || served.has(s.id));
    waits.style.setProperty("--cols", String(Math.max(1, shown.length)));
    waits.replaceChildren(...shown.map((s) => {
      const d = el("div", "service");
      const info = el("div", "info", undefined, L1);
      if (s.intake_open === false) info.append(el("span", "closed", t("display.intake_closed", L1)));
      else {
        info.append(el("span", "", t("display.waiting_count", L1, { count: num(s.waiting) }, s.waiting)));
        if (s.waiting && s.eta_min != null) {
          const wait = s.eta_min > 0 ? t("wait.minutes", L1, { minutes: num(s.eta_min) }, s.eta_min) : t("wait.under_minute", L1);
          info.append(el("span", "", wait));
        }
      }
      const names = named("name", s.name);
      if (s.prefix) names[0].prepend(el("b", "prefix", s.prefix));
      d.append(...names, info);
      return d;
    }));
    if (state && state.name) document.getElementById("office").textContent = state.name;
    document.getElementById("offline").hidden = isOnline();
    hyphenate(document.getElementById("screen"));
  }

  // the office's time zone and the German date format, as on the Pi board (not the TV's own settings)
  const timeFmt = new Intl.DateTimeFormat("de-DE", { hour: "2-digit", minute: "2-digit", timeZone: boot.tz });
  const dateFmt = new Intl.DateTimeFormat("de-DE", { day: "2-digit", month: "2-digit", year: "numeric", timeZone: boot.tz });

  function tick() {
    const now = new Date();
    document.getElementById("time").textContent = timeFmt.format(now);
    document.getElementById("date").textContent = dateFmt.format(now);
    const hero = document.getElementById("hero");
    let expired = false;
    for (const [k, until] of kept) if (until <= Date.now()) { kept.delete(k); expired = true; }
    if (expired || (hero.classList.contains("blink") && Date.now() >= blinkUntil)) render();
  }

  // -- sound: gong, then the speech (a WAV from the server, else the browser's speechSynthesis), in order.
  // As on the Pi (displays/announce.py): a call still waiting for its turn when its counter calls another
  // ticket is not announced (it would send the citizen to a counter that calls somebody else). While the
  // browser refuses sound until a click, calls wait; after the click only those of the last
  // announce_missed_s are announced (the Pi's window for calls it missed), not every call since the morning.
  const queue = [];         // {call, at: when it came (ms), held: it waited for the click}
  const announced = [];     // tickets whose gong began, oldest first (the last 50)
  const starts = [];        // what the screen showed as each gong began (the last 50; tests, support)
  const missedMs = boot.missed_ms != null ? boot.missed_ms : 60000;
  let playing = false, blocked = false;
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
      u.lang = { de: "de-DE", en: "en-GB", tr: "tr-TR", ar: "ar", uk: "uk-UA", ru: "ru-RU", "de-LS": "de-DE" }[lang] || lang;
      u.onend = u.onerror = () => resolve();
      window.speechSynthesis.speak(u);
    });
  }

  function spokenTicket(number, lang) {
    const m = /^([A-Z])0*(\d+)$/.exec(number);
    if (!m) return number;
    const names = t("announce.letters", lang).split(/\s+/);  // the letter as the voice says it (i18n.spoken_letter)
    const letter = names.length === 26 ? names[m[1].charCodeAt(0) - 65] : m[1];
    return t("announce.ticket", lang, { letter, number: m[2] });
  }

  // the same pauses as the Pi display (the office's display.gong_pause_s, phrase_pause_s, call_gap_s)
  const pause = Object.assign({ gong: 800, phrase: 400, call: 1500 }, boot.pause || {});
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function announce(c) {
    await play(me.dataset.gong);
    announced.push(c.ticket);
    if (announced.length > 50) announced.shift();
    if (boot.sound !== "1") return;
    await sleep(pause.gong);
    // German (the first of ?speak=), then the ticket's language, then the other languages of ?speak=
    const spoken = [boot.speak[0], c.lang && c.lang !== "de-LS" ? c.lang : null, ...boot.speak.slice(1)]
      .filter((x, i, a) => x && a.indexOf(x) === i);
    for (const [i, lang] of spoken.entries()) {
      if (i) await sleep(pause.phrase);
      const url = me.dataset.speech + "?" + new URLSearchParams({ ticket: c.ticket, counter: c.counter, lang,
        recall: c.recall ? "1" : "0" });
      try { await play(url); } catch (err) {
        const text = t(c.recall ? "announce.recall" : "announce.call", lang,
          { ticket: spokenTicket(c.ticket, lang), counter: pick(c.spoken, lang) });
        await speakInBrowser(text, lang);
      }
    }
  }

  function enqueue(c) {
    for (let i = queue.length - 1; i >= 0; i--) {
      if (queue[i].call.counter === c.counter && queue[i].call.ticket !== c.ticket) queue.splice(i, 1);
    }
    queue.push({ call: c, at: Date.now(), held: blocked });
    drain();
  }

  async function drain() {
    if (playing) return;
    playing = true;
    while (queue.length) {
      const item = queue.shift();
      if (item.held && Date.now() - item.at > missedMs) { render(); continue; }  // too old to call now
      const k = key(item.call);
      current = k; sounding = true;  // the panel shows it from its gong on
      blinkKey = k; blinkUntil = Date.now() + blinkMs;
      render();
      starts.push({ ticket: item.call.ticket, panel: document.getElementById("hero").dataset.ticket,
        rows: [...document.querySelectorAll("#recent-list li")].map((li) =>
          [li.querySelector(".ticket").textContent, li.classList.contains("pending")]) });
      if (starts.length > 50) starts.shift();
      try {
        await announce(item.call);
        blocked = false;
        sounding = false;
        kept.set(k, Date.now() + keepMs);
        if (!queue.length) current = null;  // nothing more to announce: the newest call takes the panel
        render();
        if (queue.length) await sleep(pause.call);
      } catch (err) {
        sounding = false;
        current = null;
        render();
        if (err && err.name === "NotAllowedError") {  // needs a click
          starts.pop();  // (no gong began)
          blocked = true;
          queue.unshift(item);
          for (const q of queue) q.held = true;
          soundButton.hidden = false;
          break;
        }
      }
    }
    playing = false;
  }

  soundButton.addEventListener("click", () => { soundButton.hidden = true; drain(); });

  // -- live updates
  function connect() {
    const es = new EventSource("/api/stream");
    es.onopen = () => {
      streamUp = true;
      render();
      // what changed while the stream was down (the web app restarted, the controller went away meanwhile)
      const asked = heard;
      fetch(me.dataset.status, { cache: "no-store" }).then((r) => r.json()).then((st) => {
        if (heard !== asked || !st.ok) return;  // an event since is newer
        office.controller = st.controller !== false;
        office.link = st.link !== false;
        render();
      }).catch(() => {});
    };
    es.onerror = () => { streamUp = false; render(); };
    es.addEventListener("controller", (e) => {
      heard++;
      office.controller = JSON.parse(e.data).status !== "offline";
      render();
    });
    es.addEventListener("link", (e) => {
      heard++;
      office.link = JSON.parse(e.data).online !== false;
      render();
    });
    es.addEventListener("state", (e) => {
      state = JSON.parse(e.data);
      streamUp = true;
      // a call the state no longer holds (it keeps the office's newest 10) stays while it must be shown
      live = live.filter((c) => (typeof c.seq === "number" && c.seq > (state.seq || 0)) || held(key(c)));
      render();
    });
    es.addEventListener("call", (e) => {
      const c = JSON.parse(e.data);
      if (typeof c.seq === "number") { if (seen.has(c.seq)) return; seen.add(c.seq); }
      if (zone && c.zone !== zone) return;
      live.push(c);
      kept.set(key(c), Date.now() + keepMs);
      if (!sounding && !waiting().length) { blinkKey = key(c); blinkUntil = Date.now() + blinkMs; }  // in the panel now
      render();
      if (boot.sound !== "0") enqueue(c);
    });
  }

  render();
  tick();
  setInterval(tick, 1000);
  window.addEventListener("resize", render);  // a TV turned to portrait: other lines, other long words
  connect();
  window.waitroomDisplay = { calls, queue, announced, starts, spokenTicket, syllableBreaks, get playing() { return playing; },
    get online() { return isOnline(); }, get unlocked() { return unlocked; } };
})();
