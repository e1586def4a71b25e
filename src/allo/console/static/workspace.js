// A case's workspace: canned responses and knowledge-base answers into the reply, the thread kept live.
(function () {
  "use strict";
  const root = document.getElementById("case");
  if (!root) return;
  const composer = document.getElementById("composer");
  const body = document.getElementById("reply-body");
  const thread = document.getElementById("thread");

  function insert(text) {
    if (!body) return;
    const start = body.selectionStart ?? body.value.length, end = body.selectionEnd ?? body.value.length;
    const before = body.value.slice(0, start), after = body.value.slice(end);
    const glue = before && !before.endsWith("\n") ? "\n" : "";
    body.value = before + glue + text + after;
    body.focus();
    body.selectionStart = body.selectionEnd = (before + glue + text).length;
  }

  const canned = document.getElementById("canned");
  if (canned) {
    canned.addEventListener("change", () => {
      const option = canned.selectedOptions[0];
      if (option && option.dataset.body) insert(option.dataset.body);
      canned.value = "";
    });
  }

  const search = document.getElementById("kb-search");
  const results = document.getElementById("kb-results");
  if (search && results) {
    search.addEventListener("submit", async (event) => {
      event.preventDefault();
      const q = search.elements.q.value.trim();
      results.replaceChildren();
      if (!q) return;
      try {
        const params = new URLSearchParams({ q, language: root.dataset.language || "fr", limit: "5" });
        const hits = await window.Allo.api("GET", "/knowledge/search?" + params.toString());
        if (!hits.length) {
          const li = document.createElement("li");
          li.className = "muted";
          li.textContent = search.dataset.empty || "—";
          results.append(li);
        }
        for (const hit of hits) {
          const article = hit.article;
          const li = document.createElement("li");
          const title = document.createElement("strong");
          title.textContent = article.title;
          const excerpt = document.createElement("p");
          excerpt.className = "muted";
          excerpt.textContent = article.body.slice(0, 240) + (article.body.length > 240 ? "…" : "");
          const button = document.createElement("button");
          button.type = "button";
          button.className = "small";
          button.textContent = search.dataset.insert || "Insert";
          const links = (article.links || []).map((l) => (typeof l === "string" ? l : l.url)).filter(Boolean);
          button.addEventListener("click", () => insert([article.body, ...links].join("\n")));
          li.append(title, excerpt, button);
          results.append(li);
        }
      } catch (error) {
        window.Allo.toast(error.message, "error");
      }
    });
  }

  function scrollThread() {
    const list = thread && thread.querySelector(".messages");
    if (list) list.scrollTop = list.scrollHeight;
  }
  if (composer) composer.addEventListener("allo:done", () => { if (thread) window.Allo.refresh(thread); });
  if (thread) new MutationObserver(scrollThread).observe(thread, { childList: true });
  scrollThread();
})();
