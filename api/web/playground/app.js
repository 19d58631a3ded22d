// The playground at /: ask a question and watch the answer stream, or upload
// a JSONL batch and watch its progress. Vanilla JS, no build step, no inline
// code (the page runs under a strict Content-Security-Policy).
//
// Streams are read with fetch and a ReadableStream reader, not EventSource:
// EventSource cannot send the Authorization header. The API key lives in
// sessionStorage only.
"use strict";

(function () {
  const KEY = "qa.apiKey";
  const $ = (id) => document.getElementById(id);
  const terminalJob = new Set(["completed", "failed", "cancelled", "expired"]);
  const terminalBatch = new Set(["completed", "failed", "cancelled", "expired"]);
  const outputFields = { answer: "answer", key_concepts: "key-concepts", question_type: "question-type", reasoning: "reasoning" };

  // --- the API key -------------------------------------------------------

  function apiKey() {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  function showKeyState() {
    $("key-state").textContent = apiKey()
      ? "A key is set for this tab (sessionStorage only); it is sent as Authorization: Bearer."
      : "No key: requests go anonymously. A key is kept in this tab only (sessionStorage).";
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("api-key").value.trim();
    try {
      if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage disabled: nothing is kept */ }
    $("api-key").value = "";
    showKeyState();
  });
  $("key-forget").addEventListener("click", () => {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
    $("api-key").value = "";
    showKeyState();
  });
  showKeyState();

  // --- HTTP helpers ---------------------------------------------------------

  // readError reads an error answer (/v1 {"error": {...}} or the seed's
  // {"detail": ...}): a sentence, and the problems of a refused upload.
  async function readError(resp) {
    const text = await resp.text();
    try {
      const body = JSON.parse(text);
      if (body.error && body.error.message) {
        return { message: resp.status + " " + body.error.message, problems: Array.isArray(body.error.problems) ? body.error.problems : [] };
      }
      if (typeof body.detail === "string") return { message: resp.status + " " + body.detail, problems: [] };
      if (Array.isArray(body.detail)) return { message: resp.status + " " + body.detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; "), problems: [] };
    } catch (e) { /* not JSON */ }
    return { message: resp.status + " " + (text.slice(0, 300) || resp.statusText), problems: [] };
  }

  async function errorText(resp) {
    return (await readError(resp)).message;
  }

  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // readSSE reads a text/event-stream response, calling onFrame with each
  // {id, event, data, retry} frame; comments are skipped.
  async function readSSE(resp, onFrame) {
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let frame = { data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (frame.data.length > 0 || frame.event) {
            const stop = onFrame({ id: frame.id, event: frame.event || "message", data: frame.data.join("\n"), retry: frame.retry });
            if (stop) { reader.cancel().catch(() => {}); return; }
          }
          frame = { data: [] };
          continue;
        }
        if (line[0] === ":") continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v[0] === " ") v = v.slice(1);
        if (name === "data") frame.data.push(v);
        else if (name === "event") frame.event = v;
        else if (name === "id") frame.id = v;
        else if (name === "retry") frame.retry = parseInt(v, 10);
      }
    }
  }

  // follow reads an event stream to its end, reconnecting with
  // Last-Event-ID when it breaks off early. handle returns true at the end.
  async function follow(path, handle, onTrouble) {
    let lastId = "";
    let wait = 500;
    for (let tries = 0; tries < 30; tries++) {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId) h["Last-Event-ID"] = lastId;
      let ended = false;
      try {
        const resp = await fetch(path, { headers: h, cache: "no-store" });
        if (!resp.ok) {
          onTrouble(await errorText(resp), resp.status);
          if (resp.status < 500) return false;
        } else {
          await readSSE(resp, (f) => {
            if (f.id) lastId = f.id;
            if (f.retry > 0) wait = f.retry;
            ended = handle(f) || ended;
            return ended;
          });
          if (ended) return true;
        }
      } catch (e) {
        onTrouble("the stream broke off (" + e.message + "); reconnecting…", 0);
      }
      await delay(wait);
      wait = Math.min(wait * 2, 5000);
    }
    onTrouble("gave up reconnecting to " + path, 0);
    return false;
  }

  // --- one question ----------------------------------------------------------

  let job = null; // the question being followed

  function setStatus(el, status) {
    el.textContent = status;
    el.className = "status-" + status;
  }

  function note(id, text, bad) {
    const el = $(id);
    el.hidden = !text;
    el.textContent = text || "";
    el.classList.toggle("bad", !!bad);
  }

  function renderFields(fields) {
    for (const [field, id] of Object.entries(outputFields)) {
      const v = fields[field];
      $(id).textContent = v === undefined || v === "" ? (field === "answer" || field === "reasoning" ? "" : "—") : v;
    }
  }

  // resetPartial drops what an attempt streamed: it failed and the next one
  // starts from scratch.
  function resetPartial(why) {
    job.fields = {};
    job.answerTokens = 0;
    renderFields(job.fields);
    note("job-note", why, false);
  }

  function showAttempts(n) {
    job.attempt = Math.max(job.attempt, n);
    $("job-attempts").textContent = String(job.attempt);
  }

  function showResult(result) {
    const outputs = result.outputs || {};
    // The answer as shown while it streamed must be the answer as stored
    // (the browser test reads the mark).
    const shown = $("answer").textContent;
    job.fields = Object.assign({}, outputs);
    renderFields(job.fields);
    $("answer").dataset.streamed = shown === (outputs.answer || "") ? "exact" : "replaced";
    if (typeof result.latency_seconds === "number") {
      $("job-latency").textContent = result.latency_seconds.toFixed(2) + " s" + (result.provenance && result.provenance.cache_hit ? " (cache)" : "");
    }
    if (result.provenance && result.provenance.attempts) showAttempts(result.provenance.attempts);
  }

  // onJobEvent applies one event to the page; true when the job has ended.
  function onJobEvent(f) {
    let d = {};
    try { d = JSON.parse(f.data); } catch (e) { return false; }
    switch (f.event) {
      case "queued":
        setStatus($("job-status"), "queued");
        return false;
      case "started":
        // A new attempt starts over; a retrying event may have said why.
        if (d.attempt > 1 && d.attempt > job.attempt && Object.keys(job.fields).length > 0) {
          resetPartial("Attempt " + (d.attempt - 1) + " did not finish; attempt " + d.attempt + " starts over.");
        }
        showAttempts(d.attempt);
        setStatus($("job-status"), "running");
        return false;
      case "token": {
        if (d.attempt > job.attempt) {
          if (job.attempt > 0) resetPartial("Attempt " + job.attempt + " did not finish; attempt " + d.attempt + " starts over.");
          showAttempts(d.attempt);
        } else if (d.attempt < job.attempt) {
          return false; // a late piece of an abandoned attempt
        }
        if (!job.firstToken) {
          job.firstToken = performance.now();
          $("job-ttft").textContent = Math.round(job.firstToken - job.submitted) + " ms";
        }
        job.fields[d.field] = (job.fields[d.field] || "") + d.content;
        if (d.field === "answer") {
          job.answerTokens++;
          $("answer").dataset.tokens = String(job.answerTokens);
        }
        $("answer").classList.add("streaming");
        renderFields(job.fields);
        return false;
      }
      case "retrying":
        // Without a delay (retry_in_ms 0) the program starts over within the
        // running attempt; with one, the attempt failed and the job runs
        // again after it. Either way the partial answer goes.
        if (!(d.retry_in_ms > 0) && d.attempt === job.attempt && $("job-status").textContent === "running") {
          resetPartial("The answer starts over (" + (d.reason || "reset") + "); the partial answer was dropped.");
          return false;
        }
        setStatus($("job-status"), "retrying");
        resetPartial("Attempt " + d.attempt + " failed (" + (d.reason || "retrying") + "); the partial answer was dropped and the job will be retried.");
        return false;
      case "completed":
        showResult(d.result || {});
        setStatus($("job-status"), "completed");
        return true;
      case "failed":
      case "expired":
        setStatus($("job-status"), f.event);
        if (d.attempts) showAttempts(d.attempts);
        note("job-note", (d.error && d.error.message) || f.event, true);
        return true;
      case "cancelled":
        setStatus($("job-status"), "cancelled");
        return true;
      case "snapshot":
        setStatus($("job-status"), d.status);
        if (d.attempts) showAttempts(d.attempts);
        if (d.result) showResult(d.result);
        if (d.error) note("job-note", d.error.message, true);
        return terminalJob.has(d.status);
      default:
        return false; // reconnect and anything new: follow() takes care
    }
  }

  // --- the job's record -------------------------------------------------------

  // The job link shows GET /v1/jobs/{id} in the page: fetched with the key,
  // which a plain link cannot send (it would 401 when API_KEYS is set).
  let views = 0; // fetches started; only the latest one is shown

  async function showJob(url) {
    const seq = ++views;
    const view = $("job-view");
    view.hidden = false;
    $("job-view-path").textContent = "GET " + url;
    $("job-view-state").textContent = "loading…";
    $("job-view-state").classList.remove("bad");
    try {
      const resp = await fetch(url, { headers: headers(), cache: "no-store" });
      const failure = resp.ok ? "" : await errorText(resp);
      const body = resp.ok ? await resp.json() : null;
      if (seq !== views) return;
      $("job-json").textContent = body ? JSON.stringify(body, null, 2) : "";
      $("job-view-state").textContent = body ? body.status + " · fetched at " + new Date().toLocaleTimeString() : failure;
      $("job-view-state").classList.toggle("bad", !body);
      view.dataset.fetches = String((Number(view.dataset.fetches) || 0) + 1);
    } catch (e) {
      if (seq !== views) return;
      $("job-view-state").textContent = "Could not reach the API: " + e.message;
      $("job-view-state").classList.add("bad");
    }
  }

  function hideJob() {
    views++;
    $("job-view").hidden = true;
    $("job-json").textContent = "";
  }

  // --- a pushed program --------------------------------------------------------

  // The form is built from the chosen program's input_schema (GET
  // /v1/programs). Everything a program says (its name, description, input
  // names and descriptions) goes into the page as text (textContent,
  // placeholder), never as HTML: whoever pushed it is not the one reading.
  let programList = [];

  async function loadPrograms() {
    const sel = $("program-select");
    try {
      const resp = await fetch("/v1/programs", { headers: headers(), cache: "no-store" });
      if (!resp.ok) {
        note("program-note", await errorText(resp), true);
        return;
      }
      programList = (await resp.json()).programs || [];
    } catch (e) {
      note("program-note", "Could not reach the API: " + e.message, true);
      return;
    }
    note("program-note", programList.length ? "" : "No program pushed yet.", false);
    const chosen = sel.value;
    sel.replaceChildren();
    for (const p of programList) {
      const opt = document.createElement("option");
      opt.value = p.name;
      opt.textContent = p.name;
      sel.appendChild(opt);
    }
    if (programList.some((p) => p.name === chosen)) sel.value = chosen;
    sel.dataset.loaded = String(programList.length);
    showProgram();
  }

  function latestOf(p) {
    const v = p.aliases.latest;
    return p.versions.find((x) => x.version === v) || p.versions[0];
  }

  // typeName says what an input takes, from its JSON Schema.
  function typeName(s) {
    return s.type === "string" ? "text" : "JSON" + (s.type ? ", " + s.type : "");
  }

  function showProgram() {
    const box = $("program-inputs");
    box.replaceChildren();
    const p = programList.find((x) => x.name === $("program-select").value);
    $("program-run").disabled = !p;
    $("program-description").textContent = "";
    if (!p) return;
    const v = latestOf(p);
    $("program-description").textContent = (v.description ? v.description + " · " : "") + "version " + v.version.slice(0, 12);
    const props = (v.input_schema && v.input_schema.properties) || {};
    for (const [name, s] of Object.entries(props)) {
      const label = document.createElement("label");
      label.className = "field";
      const title = document.createElement("span");
      title.textContent = name + " (" + typeName(s) + ")";
      const input = document.createElement("textarea");
      input.rows = 2;
      input.id = "program-input-" + name;
      input.dataset.input = name;
      input.dataset.json = s.type === "string" ? "" : "1";
      if (s.description) input.placeholder = s.description;
      label.append(title, input);
      box.appendChild(label);
    }
  }

  // programInputs reads the form: text as it is, JSON parsed; null and a
  // note naming the input when one does not parse.
  function programInputs() {
    const inputs = {};
    for (const el of $("program-inputs").querySelectorAll("textarea")) {
      if (!el.dataset.json) {
        inputs[el.dataset.input] = el.value;
        continue;
      }
      try {
        inputs[el.dataset.input] = JSON.parse(el.value);
      } catch (e) {
        note("program-note", "inputs." + el.dataset.input + " is not JSON: " + e.message, true);
        return null;
      }
    }
    return inputs;
  }

  $("program-select").addEventListener("change", showProgram);
  $("program-reload").addEventListener("click", loadPrograms);
  // Listed once a key is set (or asked for: Reload, or opening the empty
  // list), so a page opened without its key does not start with a 401.
  $("program-select").addEventListener("focus", () => { if (!programList.length) loadPrograms(); });
  $("key-form").addEventListener("submit", loadPrograms);
  $("program-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("program-select").value;
    const inputs = programInputs();
    if (!name || !inputs) return;
    note("program-note", "");
    $("program-result").textContent = "";
    $("program-job").textContent = "—";
    setStatus($("program-status"), "submitting");
    $("program-run").disabled = true;
    try {
      const resp = await fetch("/v1/jobs", { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ program: name, inputs: inputs }) });
      if (resp.status !== 202) {
        setStatus($("program-status"), "rejected");
        note("program-note", await errorText(resp), true);
        return;
      }
      const sub = await resp.json();
      $("program-job").textContent = sub.id;
      setStatus($("program-status"), sub.status);
      // Long-poll the record until the job ends.
      for (;;) {
        const r = await fetch(sub.links.self + "?wait=30s", { headers: headers(), cache: "no-store" });
        if (!r.ok) {
          note("program-note", await errorText(r), true);
          return;
        }
        const j = await r.json();
        setStatus($("program-status"), j.status);
        if (terminalJob.has(j.status)) {
          if (j.result) $("program-result").textContent = JSON.stringify(j.result.outputs, null, 2);
          if (j.error) note("program-note", j.error.message, true);
          return;
        }
      }
    } catch (e) {
      note("program-note", "Could not reach the API: " + e.message, true);
    } finally {
      $("program-run").disabled = false;
    }
  });
  if (apiKey()) loadPrograms();

  $("job-link").addEventListener("click", () => showJob($("job-link").dataset.url));
  $("job-refresh").addEventListener("click", () => showJob($("job-link").dataset.url));
  $("job-view-close").addEventListener("click", hideJob);

  function busy(on) {
    $("ask-btn").disabled = on;
    $("cancel-btn").hidden = !on;
    if (!on) $("answer").classList.remove("streaming");
  }

  $("ask-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    job = { id: "", attempt: 0, fields: {}, answerTokens: 0, submitted: performance.now(), firstToken: 0 };
    renderFields({});
    delete $("answer").dataset.streamed;
    $("answer").dataset.tokens = "0";
    for (const id of ["job-attempts", "job-ttft", "job-latency"]) $(id).textContent = "—";
    note("job-note", "");
    hideJob();
    $("job-link").hidden = true;
    $("job-none").hidden = false;
    setStatus($("job-status"), "submitting");
    busy(true);
    try {
      const body = { question: question };
      if ($("no-cache").checked) body.no_cache = true;
      const resp = await fetch("/v1/jobs", { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
      if (resp.status !== 202) {
        setStatus($("job-status"), "rejected");
        note("job-note", await errorText(resp), true);
        return;
      }
      const sub = await resp.json();
      job.id = sub.id;
      const link = $("job-link");
      link.dataset.url = sub.links.self;
      link.textContent = sub.id;
      link.hidden = false;
      $("job-none").hidden = true;
      setStatus($("job-status"), sub.status);
      const current = job;
      await follow(sub.links.events, (f) => (job === current ? onJobEvent(f) : true), (msg, status) => {
        if (job === current) note("job-note", msg, status >= 400);
      });
    } catch (e) {
      note("job-note", "Could not reach the API: " + e.message, true);
    } finally {
      busy(false);
    }
  });

  $("cancel-btn").addEventListener("click", async () => {
    if (!job || !job.id) return;
    const resp = await fetch("/v1/jobs/" + job.id + "/cancel", { method: "POST", headers: headers() });
    if (!resp.ok) note("job-note", await errorText(resp), true);
  });

  // --- batches -------------------------------------------------------------------

  let batch = null;

  // problemsListed is how many problems a 422 lists at most (the API's cap).
  const problemsListed = 100;

  // showProblems lists every problem of a refused upload, by line.
  function showProblems(problems) {
    const list = $("batch-problems");
    list.replaceChildren(...problems.map((p) => {
      const li = document.createElement("li");
      const where = p.line > 0 ? "line " + p.line + (p.field ? " (" + p.field + ")" : "") + ": " : "";
      li.textContent = where + p.reason;
      return li;
    }));
    list.hidden = problems.length === 0;
  }

  function showBatch(b) {
    if (b.status) setStatus($("batch-status"), b.status);
    const c = b.request_counts || b.counts || b;
    if (typeof c.total === "number" && c.total > 0) {
      const done = (c.completed || 0) + (c.failed || 0) + (c.cancelled || 0);
      const pct = Math.floor((100 * done) / c.total);
      const bar = $("batch-progress");
      bar.value = pct;
      // The percentages shown, in order (the browser test reads them).
      const seen = bar.dataset.seen ? bar.dataset.seen.split(",") : [];
      if (seen[seen.length - 1] !== String(pct)) bar.dataset.seen = seen.concat(String(pct)).join(",");
      $("batch-percent").textContent = pct + "%";
      $("batch-counts").textContent = done + " / " + c.total + (c.failed ? " · " + c.failed + " failed" : "") + (c.cancelled ? " · " + c.cancelled + " cancelled" : "");
    }
  }

  async function getBatch(id) {
    const resp = await fetch("/v1/batches/" + id, { headers: headers(), cache: "no-store" });
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp.json();
  }

  // offerResults downloads the results and offers them as a file. It drops
  // empty lines (the heartbeats of a download that waits) and follows a
  // continue line, which ends a response cut short, to the rest.
  async function offerResults(id) {
    const kept = [];
    let next = "/v1/batches/" + id + "/results";
    for (let tries = 0; next && tries < 10; tries++) {
      const resp = await fetch(next, { headers: headers(), cache: "no-store" });
      if (!resp.ok) {
        note("batch-note", "Results: " + (await errorText(resp)), true);
        return;
      }
      next = null;
      for (const line of (await resp.text()).split("\n")) {
        if (line.trim() === "") continue;
        if (line.startsWith('{"object":"batch.results.continue"')) next = JSON.parse(line).next;
        else kept.push(line);
      }
    }
    if (next) {
      note("batch-note", "Results: the server kept ending the download early; try again later", true);
      return;
    }
    const text = kept.map((l) => l + "\n").join("");
    const lines = kept.length;
    const a = $("batch-download");
    if (a.href && a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
    a.download = "batch-" + id + "-results.jsonl";
    a.textContent = "Download results (" + lines + " lines)";
    a.dataset.lines = String(lines);
    a.hidden = false;
  }

  async function pollBatch(id, current) {
    for (;;) {
      const b = await getBatch(id);
      if (batch !== current) return null;
      showBatch(b);
      if (terminalBatch.has(b.status)) return b;
      await delay(1000);
    }
  }

  $("batch-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = $("batch-file").files[0];
    if (!file) return;
    const current = {};
    batch = current;
    $("batch-btn").disabled = true;
    $("batch-download").hidden = true;
    $("batch-progress").value = 0;
    delete $("batch-progress").dataset.seen;
    $("batch-percent").textContent = "0%";
    $("batch-counts").textContent = "—";
    note("batch-note", "");
    showProblems([]);
    setStatus($("batch-status"), "uploading");
    try {
      const type = /\.json$/i.test(file.name) ? "application/json" : "application/x-ndjson";
      const resp = await fetch("/v1/batches", { method: "POST", headers: headers({ "Content-Type": type }), body: file });
      if (resp.status !== 202) {
        setStatus($("batch-status"), "rejected");
        const err = await readError(resp);
        const n = err.problems.length;
        note("batch-note", n === 0 ? err.message
          : resp.status + " Nothing was queued: the upload has " + (n >= problemsListed ? "at least " + n + " problems (the first " + n + " below)" : n === 1 ? "1 problem" : n + " problems") + ".", true);
        showProblems(err.problems);
        return;
      }
      const b = await resp.json();
      $("batch-id").textContent = b.id;
      showBatch(b);
      let ended = false;
      if (!terminalBatch.has(b.status)) {
        ended = await follow("/v1/batches/" + b.id + "/events", (f) => {
          if (batch !== current) return true;
          let d = {};
          try { d = JSON.parse(f.data); } catch (e) { return false; }
          if (f.event === "snapshot" || f.event === "progress" || terminalBatch.has(f.event)) showBatch(d);
          return terminalBatch.has(f.event) || terminalBatch.has(d.status);
        }, (msg) => note("batch-note", msg, false));
      }
      if (batch !== current) return;
      // The final counts, from the record (events may be throttled).
      const final = ended || terminalBatch.has(b.status) ? await getBatch(b.id) : await pollBatch(b.id, current);
      if (!final || batch !== current) return;
      showBatch(final);
      note("batch-note", "");
      await offerResults(b.id);
    } catch (e) {
      note("batch-note", "Batch: " + e.message, true);
    } finally {
      if (batch === current) $("batch-btn").disabled = false;
    }
  });
})();
