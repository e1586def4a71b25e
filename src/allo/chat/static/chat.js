// The customer chat page: one conversation with the assistant (then an advisor) over /chat/api.
// Message text is only ever set with textContent: it comes from customers and is never trusted as HTML.
(() => {
  "use strict";

  const MAX_LENGTH = 4000;
  const WARN_FROM = MAX_LENGTH - 500;
  const POLL_MS = 3000;
  const STREAM_RETRY_MS = [5000, 15000, 30000, 60000];
  const AUTHORS = new Set(["customer", "bot", "agent", "system"]);
  const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:", "tel:"]);

  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const t = JSON.parse(document.getElementById("chat-strings").textContent);
  const $ = (id) => document.getElementById(id);
  const el = {
    banner: $("chat-banner"),
    bannerText: $("chat-banner-text"),
    restart: $("chat-restart"),
    log: $("chat-log"),
    startError: $("chat-start-error"),
    startErrorText: $("chat-start-error-text"),
    startPlain: $("chat-start-plain"),
    startRetry: $("chat-start-retry"),
    typing: $("chat-typing"),
    notice: $("chat-notice"),
    composer: $("chat-composer"),
    input: $("chat-input"),
    send: $("chat-send"),
    counter: $("chat-counter"),
  };
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  const timeFormat = new Intl.DateTimeFormat(config.lang, { hour: "2-digit", minute: "2-digit" });
  const dayTimeFormat = new Intl.DateTimeFormat(config.lang, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });

  // The token lives per tenant so that a reload resumes the conversation. Storage can be refused
  // (private modes, third-party frames): the page then still works, without resuming.
  const storageKey = `allo.chat.${config.tenant || "default"}`;
  let memoryToken = null;
  const store = {
    get() {
      try { return window.localStorage.getItem(storageKey); } catch { return memoryToken; }
    },
    set(value) {
      memoryToken = value;
      try { window.localStorage.setItem(storageKey, value); } catch { /* kept in memory */ }
    },
    forget() {
      memoryToken = null;
      try { window.localStorage.removeItem(storageKey); } catch { /* nothing stored */ }
    },
  };

  let token = null;
  let status = "bot";
  let agentName = null;
  let lastId = null; // the newest message the server sent, for ?after=
  let generation = 0; // bumped when the session changes, so that late answers of the old one are dropped
  let sending = false;
  let optionsFor = null;
  const shown = new Map(); // message id → message
  const pending = new Map(); // client_message_id → {id, text, option, node}
  let stream = null;
  let streamFailures = 0;
  let streamRetry = null;
  let pollTimer = null;
  let polling = false;

  // ---- HTTP -------------------------------------------------------------------------------------

  /** Calls the chat API; never throws. A network failure has status 0. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["X-Chat-Token"] = token;
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: "no-store", credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      return { ok: false, status: 0, data: null, code: null };
    }
    let data = null;
    try { data = await response.json(); } catch { /* an empty or non-JSON body */ }
    const code = !response.ok && data && data.error ? data.error.code : null;
    return { ok: response.ok, status: response.status, data, code };
  }

  function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- Session ----------------------------------------------------------------------------------

  async function start() {
    hideStartError();
    const stored = store.get();
    // A personal link (?c=) always opens a conversation as that contact; otherwise resume.
    if (stored && !config.contact) {
      token = stored;
      const res = await api("GET", "/chat/api/session");
      if (res.ok) {
        load(res.data);
        if (res.data.language && res.data.language !== config.lang) {
          api("PATCH", "/chat/api/session", { language: config.lang });
        }
        return;
      }
      if (res.status !== 401 && res.status !== 404) {
        showStartError(t.load_failed, { retry: true });
        return;
      }
      store.forget();
    }
    await create(config.contact);
  }

  async function create(contact, notice) {
    generation += 1;
    stopLive();
    // With a personal link, the chat this browser already opened from it goes on (the server checks).
    const resume = contact ? store.get() : null;
    token = null;
    const body = { language: config.lang, tenant: config.tenant || null, contact: contact || null };
    if (resume) body.resume = resume;
    const res = await api("POST", "/chat/api/sessions", body);
    if (res.ok) {
      forgetContact();
      load(res.data);
      if (notice) showNotice(notice);
      return;
    }
    if (res.code === "contact_link_invalid" || res.code === "contact_link_expired") {
      showStartError(res.code === "contact_link_expired" ? t.link_expired : t.link_invalid, { plain: true });
    } else if (res.status === 404) {
      showStartError(t.unavailable, {});
    } else {
      showStartError(t.load_failed, { retry: true });
    }
  }

  function load(state) {
    generation += 1;
    stopLive();
    token = state.token;
    store.set(token);
    shown.clear();
    pending.clear();
    lastId = null;
    optionsFor = null;
    status = null;
    el.log.replaceChildren();
    setSending(false);
    hideStartError();
    hideNotice();
    for (const message of state.messages || []) addMessage(message);
    setStatus(state.status, state.agent_name);
    refreshOptions();
    scrollToEnd();
    focusComposer();
    openStream();
  }

  function sessionLost() {
    store.forget();
    create(null, t.expired);
  }

  /** The contact token is spent once the session exists: keep it out of the address bar and links. */
  function forgetContact() {
    config.contact = null;
    const url = new URL(window.location.href);
    if (url.searchParams.has("c")) {
      url.searchParams.delete("c");
      window.history.replaceState(window.history.state, "", url);
    }
    for (const link of document.querySelectorAll(".langs a[data-lang]")) {
      const target = new URL(link.href);
      target.searchParams.delete("c");
      link.href = target.href;
    }
  }

  // ---- Live updates: the stream, else polling ---------------------------------------------------

  function openStream() {
    closeStream();
    if (!token) return;
    if (!("EventSource" in window)) {
      startPolling();
      return;
    }
    const source = new EventSource(`/chat/api/stream?token=${encodeURIComponent(token)}`);
    stream = source;
    source.addEventListener("open", () => {
      streamFailures = 0;
      stopPolling();
      poll(); // whatever was said while the stream was down
    });
    source.addEventListener("message", (event) => {
      const message = parse(event.data);
      if (message) update(() => addMessage(message));
    });
    source.addEventListener("status", (event) => {
      const change = parse(event.data);
      if (change) setStatus(change.status, change.agent_name);
    });
    source.addEventListener("error", () => {
      if (stream !== source) return;
      closeStream();
      startPolling();
      const delay = STREAM_RETRY_MS[Math.min(streamFailures, STREAM_RETRY_MS.length - 1)];
      streamFailures += 1;
      streamRetry = window.setTimeout(openStream, delay);
    });
  }

  function closeStream() {
    if (stream) stream.close();
    stream = null;
    window.clearTimeout(streamRetry);
    streamRetry = null;
  }

  function startPolling() {
    if (pollTimer) return;
    poll();
    pollTimer = window.setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    window.clearInterval(pollTimer);
    pollTimer = null;
  }

  function stopLive() {
    closeStream();
    stopPolling();
  }

  async function poll() {
    if (polling || !token) return;
    polling = true;
    const current = generation;
    const query = lastId ? `?after=${encodeURIComponent(lastId)}` : "";
    const res = await api("GET", `/chat/api/messages${query}`);
    polling = false;
    if (current !== generation) return;
    if (res.ok && res.data) {
      update(() => {
        for (const message of res.data.messages || []) addMessage(message);
      });
      setStatus(res.data.status, res.data.agent_name);
    } else if (res.status === 401) {
      sessionLost();
    }
  }

  function parse(data) {
    try { return JSON.parse(data); } catch { return null; }
  }

  // ---- Messages ---------------------------------------------------------------------------------

  /** Shows a message from the server once, whichever way it arrives; returns whether it was new. */
  function addMessage(message, placeholder) {
    if (!message || !message.id || shown.has(message.id)) return false;
    const node = renderMessage(message);
    const own = placeholder || (message.author === "customer" ? claimPending(message) : null);
    if (own && own.isConnected) own.replaceWith(node);
    else el.log.append(node);
    shown.set(message.id, message);
    lastId = message.id;
    if (message.kind === "handover" && status === "bot") setStatus("queued", null);
    return true;
  }

  /** The bubble of a message being sent that the server's copy (from the stream) stands for. */
  function claimPending(message) {
    for (const [id, entry] of pending) {
      if (id === message.client_message_id || entry.text === message.text) {
        pending.delete(id);
        return entry.node;
      }
    }
    return null;
  }

  function renderMessage(message) {
    const author = AUTHORS.has(message.author) ? message.author : "system";
    const node = document.createElement("div");
    node.className = `msg from-${author}`;
    if (message.id) node.dataset.id = message.id;
    if (author !== "system") {
      const who = document.createElement("p");
      who.className = author === "customer" ? "who visually-hidden" : "who";
      who.textContent = authorName(author, message.author_name);
      node.append(who);
    }
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text || "";
    bubble.append(text);
    const links = (message.links || []).map(renderLink).filter(Boolean);
    if (links.length) {
      const list = document.createElement("ul");
      list.className = "links";
      list.append(...links);
      bubble.append(list);
    }
    node.append(bubble);
    const meta = document.createElement("p");
    meta.className = "meta";
    const time = document.createElement("time");
    time.dateTime = message.created_at || "";
    time.textContent = formatTime(message.created_at);
    meta.append(time);
    node.append(meta);
    return node;
  }

  function authorName(author, name) {
    if (author === "customer") return t.you;
    if (author === "agent") return name || t.advisor;
    return name || t.assistant;
  }

  function renderLink(link) {
    let url;
    try {
      url = new URL(link.url, window.location.href);
    } catch {
      return null;
    }
    if (!LINK_PROTOCOLS.has(url.protocol)) return null;
    const item = document.createElement("li");
    const anchor = document.createElement("a");
    anchor.href = url.href;
    anchor.target = "_blank";
    anchor.rel = "noopener noreferrer";
    anchor.textContent = link.title || link.url;
    item.append(anchor);
    return item;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const today = new Date();
    const sameDay = date.toDateString() === today.toDateString();
    return (sameDay ? timeFormat : dayTimeFormat).format(date);
  }

  /** Quick replies belong to the newest message only, when it is the assistant's or an advisor's. */
  function refreshOptions() {
    const last = el.log.lastElementChild;
    const message = last && last.dataset.id ? shown.get(last.dataset.id) : null;
    const wanted = message && message.author !== "customer" && (message.options || []).length ? message : null;
    if (wanted && optionsFor === wanted.id) return;
    for (const group of el.log.querySelectorAll(".options")) group.remove();
    optionsFor = wanted ? wanted.id : null;
    if (wanted) last.append(renderOptions(wanted));
  }

  function renderOptions(message) {
    const rating = message.kind === "csat";
    const group = document.createElement("div");
    group.className = rating ? "options rating" : "options";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", rating ? t.rating : t.replies);
    for (const option of message.options) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = option.label;
      button.disabled = sending;
      if (rating && /^[1-5]$/.test(option.id)) {
        // A row of 1…5: the digit is shown, the label (say "4 out of 5") is what is read out.
        button.textContent = option.id;
        const spoken = option.label === option.id ? t.rate.replace("%(score)s", option.id) : option.label;
        button.setAttribute("aria-label", spoken);
      }
      button.addEventListener("click", () => {
        if (sending) return;
        for (const other of group.querySelectorAll("button")) other.disabled = true;
        send(option.label, option.id);
        focusComposer();
      });
      group.append(button);
    }
    return group;
  }

  function update(change, force = false) {
    const stick = force || nearBottom();
    change();
    refreshOptions();
    if (stick) scrollToEnd();
  }

  function nearBottom() {
    return el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 120;
  }

  function scrollToEnd() {
    el.log.scrollTo({ top: el.log.scrollHeight, behavior: reducedMotion.matches ? "auto" : "smooth" });
  }

  // ---- Sending ----------------------------------------------------------------------------------

  function send(text, option) {
    const node = renderMessage({ author: "customer", text, created_at: null });
    node.classList.add("pending");
    node.querySelector(".meta").textContent = t.sending;
    const entry = { id: newId(), text, option, node };
    pending.set(entry.id, entry);
    update(() => el.log.append(node), true);
    deliver(entry);
  }

  async function deliver(entry) {
    const current = generation;
    setSending(true);
    entry.node.classList.remove("failed");
    entry.node.classList.add("pending");
    entry.node.querySelector(".meta").textContent = t.sending;
    const res = await api("POST", "/chat/api/messages", {
      text: entry.text, option: entry.option, client_message_id: entry.id,
    });
    if (current !== generation) return;
    setSending(false);
    if (res.ok && res.data) {
      pending.delete(entry.id);
      const messages = res.data.messages || [];
      update(() => {
        const own = messages[0] && messages[0].author === "customer" ? messages.shift() : null;
        if (!own || shown.has(own.id)) entry.node.remove();
        if (own) addMessage(own, entry.node);
        for (const message of messages) addMessage(message);
      }, true);
      setStatus(res.data.status, res.data.agent_name);
      return;
    }
    if (res.status === 401) {
      pending.delete(entry.id);
      entry.node.remove();
      restoreDraft(entry);
      store.forget();
      await create(null, t.expired);
      return;
    }
    if (res.status === 0 || res.status >= 500) {
      showFailed(entry);
      return;
    }
    // The server understood and refused: sending the same again would not help, so hand it back.
    pending.delete(entry.id);
    update(() => entry.node.remove());
    restoreDraft(entry);
    showNotice(refusal(res));
  }

  function refusal(res) {
    if (res.code === "message_too_large" || res.status === 413) return t.too_long;
    if (res.code === "too_many_requests" || res.status === 429) return t.slow_down;
    if (res.code === "empty_message") return t.empty;
    return t.error;
  }

  function showFailed(entry) {
    entry.node.classList.remove("pending");
    entry.node.classList.add("failed");
    const meta = entry.node.querySelector(".meta");
    meta.replaceChildren();
    const failure = document.createElement("span");
    failure.className = "failure";
    const label = document.createElement("span");
    label.textContent = t.not_sent;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = t.retry;
    retry.addEventListener("click", () => {
      if (sending) return;
      focusComposer();
      deliver(entry); // the same client_message_id: the server answers a retry only once
    });
    failure.append(label, retry);
    meta.append(failure);
  }

  function restoreDraft(entry) {
    if (entry.option !== null || el.input.value.trim()) return;
    el.input.value = entry.text;
    composerChanged();
    focusComposer();
  }

  function setSending(on) {
    sending = on;
    el.input.readOnly = on; // not disabled: that would take the focus away from the composer
    el.input.setAttribute("aria-busy", String(on));
    el.send.disabled = on;
    el.typing.hidden = !on;
    for (const button of el.log.querySelectorAll(".options button")) button.disabled = on;
    if (on && nearBottom()) scrollToEnd();
  }

  function submitDraft() {
    if (sending) return;
    const text = el.input.value.trim();
    if (!text) return;
    if ([...text].length > MAX_LENGTH) {
      showNotice(t.too_long);
      return;
    }
    el.input.value = "";
    composerChanged();
    hideNotice();
    send(text, null);
  }

  function composerChanged() {
    const length = [...el.input.value].length;
    const over = length > MAX_LENGTH;
    el.counter.hidden = length <= WARN_FROM;
    el.counter.textContent = `${length} / ${MAX_LENGTH}`;
    el.counter.classList.toggle("over", over);
    if (over && el.input.getAttribute("aria-invalid") !== "true") showNotice(t.too_long);
    if (!over && el.input.getAttribute("aria-invalid") === "true") hideNotice();
    el.input.setAttribute("aria-invalid", String(over));
    const stick = nearBottom(); // a taller composer must not hide the newest message
    el.input.style.height = "auto";
    el.input.style.height = `${el.input.scrollHeight + 2}px`;
    if (stick) scrollToEnd();
  }

  function focusComposer() {
    if (!el.composer.hidden) el.input.focus({ preventScroll: true });
  }

  // ---- Status, notices --------------------------------------------------------------------------

  function setStatus(next, name) {
    if (!next || (next === status && (name || null) === agentName)) return;
    status = next;
    agentName = name || null;
    let text = "";
    if (status === "queued") text = t.queued;
    else if (status === "assigned") text = agentName ? t.assigned.replace("%(name)s", agentName) : t.assigned_unnamed;
    const closed = status === "resolved" || status === "abandoned";
    if (closed) text = t.resolved;
    el.bannerText.textContent = text;
    el.banner.hidden = !text;
    const hadFocus = el.composer.contains(document.activeElement);
    el.restart.hidden = !closed;
    el.composer.hidden = closed;
    el.typing.hidden = closed || !sending;
    if (closed && hadFocus) el.restart.focus();
  }

  function showNotice(text) {
    el.notice.textContent = text;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.notice.textContent = "";
  }

  function showStartError(text, { plain = false, retry = false }) {
    el.log.replaceChildren();
    el.composer.hidden = true;
    el.startErrorText.textContent = text;
    el.startPlain.hidden = !plain;
    el.startRetry.hidden = !retry;
    el.startError.hidden = false;
    const action = plain ? el.startPlain : retry ? el.startRetry : null;
    if (action) action.focus();
  }

  function hideStartError() {
    el.startError.hidden = true;
  }

  // ---- Wiring -----------------------------------------------------------------------------------

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitDraft();
  });
  el.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitDraft();
    }
  });
  el.input.addEventListener("input", composerChanged);
  el.restart.addEventListener("click", () => create(null));
  el.startRetry.addEventListener("click", () => start());
  el.startPlain.addEventListener("click", () => {
    forgetContact();
    create(null);
  });

  for (const link of document.querySelectorAll(".langs a[data-lang]")) {
    link.addEventListener("click", async (event) => {
      if (!token || link.dataset.lang === config.lang) return;
      event.preventDefault();
      await api("PATCH", "/chat/api/session", { language: link.dataset.lang });
      window.location.assign(link.href);
    });
  }

  // Inside the widget's frame, Escape closes the panel: the host page cannot see keys typed here.
  if (config.embed && window.parent !== window) {
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") window.parent.postMessage({ type: "allo-chat:close" }, "*");
    });
  }

  start();
})();
