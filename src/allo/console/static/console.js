// The console's small shared script: the JSON API with the session's CSRF token, live events, clocks,
// forms that post JSON, presence and (with consent) a mobile agent's position. No build step.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const text = JSON.parse(document.getElementById("console-i18n")?.textContent || "{}");
  const lang = document.documentElement.lang || "fr";

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || text.error || "Error");
      this.status = status;
      this.code = body && body.error && body.error.code;
      this.details = body && body.error && body.error.details;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path.startsWith("/api/") ? path : "/api/v1" + path, init);
    if (response.status === 401) {
      window.location.assign("/?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, null);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  let toastTimer = null;
  function toast(message, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.className = "toast " + (kind || "info");
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 3000);
  }

  // ---- Live events: one EventSource per page; handlers get (type, data) ------------------------
  const handlers = [];
  let source = null;
  function live(handler) {
    handlers.push(handler);
    if (source) return;
    source = new EventSource("/api/v1/events");
    source.onmessage = (e) => dispatch("message", e.data);
    source.onerror = () => document.body.classList.add("disconnected");
    source.onopen = () => document.body.classList.remove("disconnected");
    for (const type of ["ticket.created", "ticket.updated", "ticket.note", "ticket.merged", "ticket.reopened",
      "conversation.created", "conversation.status", "message.created", "agent.status", "work_item.queued",
      "work_item.assigned", "incident.opened", "incident.updated", "incident.resolved", "notification"]) {
      source.addEventListener(type, (e) => dispatch(type, e.data));
    }
  }
  function dispatch(type, raw) {
    let data = null;
    try { data = JSON.parse(raw); } catch (_) { data = null; }
    for (const handler of handlers) handler(type, data && data.data !== undefined ? data.data : data);
  }

  // Replace a region with its server-rendered fragment (data-refresh="/path"), at most every 1.5 s.
  const pending = new Map();
  function refresh(region) {
    if (pending.has(region)) return;
    pending.set(region, setTimeout(async () => {
      pending.delete(region);
      const url = region.dataset.refresh;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.ok) {
          region.innerHTML = await response.text();
          tick();
        }
      } catch (_) { /* the next event retries */ }
    }, 1500));
  }

  // ---- Clocks: [data-since] counts up, [data-due] counts down and turns overdue --------------------
  function duration(seconds) {
    const s = Math.abs(Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h} h ${mm}` : `${mm}:${ss}`;
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-since]").forEach((el) => {
      el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
    });
    document.querySelectorAll("[data-due]").forEach((el) => {
      const left = (Date.parse(el.dataset.due) - now) / 1000;
      el.textContent = left < 0 ? `−${duration(left)} (${text.overdue || "overdue"})` : duration(left);
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("warning", left >= 0 && left < (Number(el.dataset.warn) || 300));
    });
  }

  // ---- Forms that call the JSON API: <form data-api="/tickets/…" data-method="PATCH"> ---------------
  function formBody(form) {
    const body = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.dataset.skip !== undefined) continue;
      if ((field.type === "checkbox" || field.type === "radio") && !field.checked && field.dataset.type !== "bool") continue;
      let value = field.value;
      const type = field.dataset.type;
      if (type === "bool") value = field.checked;
      else if (value === "" && field.dataset.empty !== "keep") continue;
      else if (type === "int") value = parseInt(value, 10);
      else if (type === "float") value = parseFloat(value);
      else if (type === "json") value = JSON.parse(value);
      else if (type === "list") value = value.split(/[,\n]/).map((v) => v.trim()).filter(Boolean);
      setPath(body, field.name, value);
    }
    return body;
  }
  function setPath(target, path, value) {
    const parts = path.split(".");
    let node = target;
    parts.slice(0, -1).forEach((p) => { node = node[p] = node[p] || {}; });
    node[parts[parts.length - 1]] = value;
  }
  async function submitApiForm(form, event) {
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const errorBox = form.querySelector(".form-error");
    if (errorBox) { errorBox.hidden = true; errorBox.textContent = ""; }
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    try {
      const body = form.dataset.body === "none" ? undefined : formBody(form);
      const result = await api(form.dataset.method || "POST", form.dataset.api, body);
      form.dispatchEvent(new CustomEvent("allo:done", { detail: result, bubbles: true }));
      if (form.dataset.then === "reload") window.location.reload();
      else if (form.dataset.then) window.location.assign(form.dataset.then.replace("{id}", result && result.id));
      else { toast(form.dataset.done || text.saved || "OK", "ok"); form.reset(); }
    } catch (error) {
      // Validation errors come as details: [{loc, message}]; name the fields that failed.
      const problems = Array.isArray(error.details) ? error.details : [];
      const details = problems.length
        ? " " + problems.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.message || e.msg}`).join("; ")
        : "";
      if (errorBox) { errorBox.textContent = error.message + details; errorBox.hidden = false; errorBox.focus(); }
      else toast(error.message + details, "error");
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- Presence -------------------------------------------------------------------------------------
  function presence() {
    const form = document.getElementById("presence");
    if (!form) return;
    const status = form.elements.status, reason = form.elements.reason;
    async function send() {
      reason.hidden = status.value !== "away";
      try {
        await api("PUT", "/agents/me/status", { status: status.value, reason: status.value === "away" ? reason.value : null });
        status.className = "status-" + status.value;
        form.dataset.status = status.value;
        document.dispatchEvent(new CustomEvent("allo:presence", { detail: status.value }));
        toast(text.saved || "OK", "ok");
      } catch (error) { toast(error.message, "error"); }
    }
    status.addEventListener("change", send);
    reason.addEventListener("change", send);
  }

  // ---- A mobile agent's position, only after they agreed, only while the console is open -----------
  const CONSENT_KEY = "allo.location.consent";
  let watch = null, lastSent = 0;
  function shareLocation(button) {
    if (!("geolocation" in navigator)) return;
    const send = async (position) => {
      if (Date.now() - lastSent < 60000) return;
      lastSent = Date.now();
      try {
        await api("PUT", "/agents/me/location", {
          latitude: position.coords.latitude,
          longitude: position.coords.longitude,
          accuracy_m: position.coords.accuracy,
        });
        if (button) button.dataset.state = "on";
        document.dispatchEvent(new CustomEvent("allo:location", { detail: position.coords }));
      } catch (error) { toast(error.message, "error"); }
    };
    watch = navigator.geolocation.watchPosition(send, () => {
      toast(text.location_denied, "error");
      localStorage.removeItem(CONSENT_KEY);
      if (button) button.dataset.state = "off";
    }, { enableHighAccuracy: true, maximumAge: 30000, timeout: 20000 });
  }
  function location() {
    const button = document.getElementById("share-location");
    if (button) {
      button.addEventListener("click", () => {
        if (watch !== null) {
          navigator.geolocation.clearWatch(watch);
          watch = null;
          localStorage.removeItem(CONSENT_KEY);
          button.dataset.state = "off";
          return;
        }
        localStorage.setItem(CONSENT_KEY, "yes");
        lastSent = 0;
        shareLocation(button);
        toast(text.location_sent, "ok");
      });
    }
    if (localStorage.getItem(CONSENT_KEY) === "yes") shareLocation(button);
  }

  window.Allo = { api, toast, live, refresh, tick, formBody, lang, text };

  document.addEventListener("DOMContentLoaded", () => {
    // Delegated: forms inside regions swapped in later work too.
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (form instanceof HTMLFormElement && form.dataset.api) submitApiForm(form, event);
    });
    // A region refreshes only for the events it lists (data-events) and, when it names records
    // (data-ids), only for events about them: a busy floor must not make every page reload.
    document.querySelectorAll("[data-refresh]").forEach((region) => {
      const types = (region.dataset.events || "").split(/\s+/).filter(Boolean);
      const ids = (region.dataset.ids || "").split(",").filter(Boolean);
      live((type, data) => {
        if (types.length && !types.includes(type)) return;
        if (ids.length && !(data && (ids.includes(data.ticket_id) || ids.includes(data.conversation_id)))) return;
        refresh(region);
      });
    });
    presence();
    location();
    tick();
    setInterval(tick, 1000);
  });
})();
