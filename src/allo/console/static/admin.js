// The admin pages' editors, on top of console.js (window.Allo): forms whose JSON is built here (an
// emptied optional field sent as null, rows of structured fields, one section of the tenant policy
// merged into the whole policy), the article preview, an API key shown once. No build step.
(function () {
  "use strict";

  function setPath(target, path, value) {
    const parts = path.split(".");
    let node = target;
    parts.slice(0, -1).forEach((p) => { node = node[p] = (node[p] && typeof node[p] === "object") ? node[p] : {}; });
    node[parts[parts.length - 1]] = value;
  }

  // A field's value, or undefined to leave it out of the body.
  function valueOf(field) {
    const type = field.dataset.type;
    if (type === "bool") return field.checked;
    if ((field.type === "checkbox" || field.type === "radio") && !field.checked) return undefined;
    const raw = field.value;
    if (type === "tristate") return raw === "" ? null : raw === "true";
    if (raw.trim() === "") {
      if (field.dataset.empty === "null") return null;
      if (field.dataset.empty === "keep") return type === "list" ? [] : raw;
      return undefined;
    }
    if (type === "int") return parseInt(raw, 10);
    if (type === "float") return parseFloat(raw);
    if (type === "json") return JSON.parse(raw);
    if (type === "list") return raw.split(/[,\n]/).map((v) => v.trim()).filter(Boolean);
    if (type === "datetime") return new Date(raw).toISOString();
    return raw;
  }

  // Rows editors: <div data-rows="path" data-shape="objects|pairs|values"> with fields carrying data-key.
  function rowsValue(editor) {
    const shape = editor.dataset.shape || "objects";
    const out = [];
    editor.querySelectorAll(":scope .row-item").forEach((row) => {
      const fields = Array.from(row.querySelectorAll("[data-key]"));
      if (fields.every((f) => f.type !== "checkbox" && f.value.trim() === "")) return;
      if (shape === "pairs") out.push(fields.map((f) => f.value.trim()));
      else if (shape === "values") out.push(fields[0].value.trim());
      else {
        const item = {};
        fields.forEach((f) => {
          const value = valueOf(f);
          if (value !== undefined) item[f.dataset.key] = value;
        });
        out.push(item);
      }
    });
    return out;
  }

  function bodyOf(form) {
    const body = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.closest("[data-rows]")) continue;
      const value = valueOf(field);
      if (value !== undefined) setPath(body, field.name, value);
    }
    form.querySelectorAll("[data-rows]").forEach((editor) => setPath(body, editor.dataset.rows, rowsValue(editor)));
    return body;
  }

  // Objects merge key by key; lists and values replace.
  function merge(target, patch) {
    for (const [key, value] of Object.entries(patch)) {
      if (value && typeof value === "object" && !Array.isArray(value) && target[key] && typeof target[key] === "object" && !Array.isArray(target[key])) {
        merge(target[key], value);
      } else {
        target[key] = value;
      }
    }
    return target;
  }

  const policyScript = document.getElementById("policy-data");
  let policy = policyScript ? JSON.parse(policyScript.textContent) : null;

  function showError(form, error) {
    // The API's validation errors: a list of {loc, message} (older answers: {errors: [{loc, msg}]}).
    const d = error.details;
    const errors = Array.isArray(d) ? d : (d && Array.isArray(d.errors) ? d.errors : []);
    const details = errors
      .filter((e) => e && e.loc)
      .map((e) => `${e.loc.filter((p) => p !== "body").join(".")}: ${e.message || e.msg}`)
      .join("; ");
    const message = error.message + (details ? " " + details : "");
    const box = form.querySelector(".form-error");
    if (box) { box.textContent = message; box.hidden = false; box.focus(); }
    else window.Allo.toast(message, "error");
  }

  async function submit(form) {
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const box = form.querySelector(".form-error");
    if (box) { box.hidden = true; box.textContent = ""; }
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    try {
      let body = bodyOf(form);
      let path = form.dataset.api, method = form.dataset.method || "POST";
      if (form.dataset.policySection !== undefined) {
        body = { policy: merge(JSON.parse(JSON.stringify(policy)), body) };
        path = "/tenant";
        method = "PATCH";
      }
      const result = await window.Allo.api(method, path, body);
      if (form.dataset.policySection !== undefined && result && result.policy) policy = result.policy;
      if (form.dataset.showKey) {
        showKey(document.querySelector(form.dataset.showKey), result);
        form.reset();
      } else if (form.dataset.then === "reload") window.location.reload();
      else if (form.dataset.then) window.location.assign(form.dataset.then.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(result ? result[name] : "")));
      else window.Allo.toast(form.dataset.done || window.Allo.text.saved || "OK", "ok");
    } catch (error) {
      showError(form, error);
    } finally {
      if (button) button.disabled = false;
    }
  }

  // Forms marked data-admin are ours: caught while capturing, before console.js sees them.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.dataset.admin === undefined) return;
    event.preventDefault();
    event.stopPropagation();
    submit(form);
  }, true);

  // ---- Rows: add and remove -------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const add = event.target.closest("[data-add-row]");
    if (add) {
      const editor = add.closest("[data-rows]");
      const template = editor.querySelector("template");
      const list = editor.querySelector(".rows-list");
      list.append(template.content.cloneNode(true));
      const rows = list.querySelectorAll(".row-item");
      rows[rows.length - 1].querySelector("input, select, textarea")?.focus();
      editor.dispatchEvent(new Event("input", { bubbles: true }));
      return;
    }
    const remove = event.target.closest("[data-remove-row]");
    if (remove) {
      const editor = remove.closest("[data-rows]");
      remove.closest(".row-item").remove();
      editor.querySelector("[data-add-row]")?.focus();
      editor.dispatchEvent(new Event("input", { bubbles: true }));
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      navigator.clipboard.writeText(source.value).then(
        () => window.Allo.toast(copy.dataset.copied || "OK", "ok"),
        () => { source.select(); },
      );
    }
  });

  // ---- An API key, shown once -----------------------------------------------------------------------
  function showKey(panel, created) {
    if (!panel || !created) return;
    panel.querySelector("input").value = created.key;
    panel.querySelector("[data-key-name]").textContent = created.name;
    panel.hidden = false;
    panel.querySelector("input").focus();
    panel.querySelector("input").select();
  }

  // ---- The article as the customer sees it: plain text, links with http(s) addresses only ----------
  function preview(form) {
    const target = document.querySelector(form.dataset.preview);
    if (!target) return;
    target.querySelector("[data-preview-title]").textContent = form.elements.title.value;
    target.querySelector("[data-preview-body]").textContent = form.elements.body.value;
    const list = target.querySelector("[data-preview-links]");
    list.replaceChildren();
    const editor = form.querySelector("[data-rows='links']");
    (editor ? rowsValue(editor) : []).forEach((link) => {
      let url;
      try { url = new URL(link.url); } catch (_) { return; }
      if (url.protocol !== "https:" && url.protocol !== "http:") return;
      const item = document.createElement("li");
      const anchor = document.createElement("a");
      anchor.href = url.href;
      anchor.rel = "noopener noreferrer";
      anchor.target = "_blank";
      anchor.textContent = link.title || url.href;
      item.append(anchor);
      list.append(item);
    });
  }

  // ---- A tree's JSON, checked as it is typed ---------------------------------------------------------
  function checkJson(field) {
    const status = document.getElementById(field.dataset.check);
    if (!status) return;
    try {
      JSON.parse(field.value);
      status.textContent = status.dataset.ok;
      status.className = "badge ok";
      field.setCustomValidity("");
    } catch (error) {
      status.textContent = `${status.dataset.ko} ${error.message}`;
      status.className = "badge ko";
      field.setCustomValidity(status.dataset.ko);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-preview]").forEach((form) => {
      form.addEventListener("input", () => preview(form));
      preview(form);
    });
    document.querySelectorAll("textarea[data-check]").forEach((field) => {
      field.addEventListener("input", () => checkJson(field));
    });
  });
})();
