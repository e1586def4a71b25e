// The Allo chat widget, for any website:
//   <script src="https://HOST/chat/widget.js" data-tenant="demo" data-lang="fr" async></script>
// A round button bottom-right opens the chat page of HOST in a frame. Everything lives in a shadow
// root so that the host page's CSS cannot reach it; the only global is window.AlloChat {open, close}.
(() => {
  "use strict";
  if (window.AlloChat) return;

  const script =
    document.currentScript ||
    document.querySelector('script[src*="/chat/widget.js"], script[src*="/chat/static/widget.js"]');
  if (!script) return;

  const origin = new URL(script.src, window.location.href).origin;
  const tenant = script.dataset.tenant || "";
  const lang = (script.dataset.lang || document.documentElement.lang || "").toLowerCase().startsWith("en")
    ? "en"
    : "fr";
  const text = {
    fr: { open: "Discuter avec nous", close: "Fermer la discussion", title: "Discussion avec le service client" },
    en: { open: "Chat with us", close: "Close the chat", title: "Chat with customer service" },
  }[lang];

  const css = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button { font: inherit; margin: 0; cursor: pointer; }
    button:focus-visible { outline: 3px solid #5b9dd9; outline-offset: 3px; }
    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      width: 60px; height: 60px; padding: 0; border: 0; border-radius: 50%;
      display: flex; align-items: center; justify-content: center;
      background: #c8102e; color: #fff; box-shadow: 0 4px 14px rgba(0, 0, 0, .3);
    }
    .panel {
      position: fixed; right: 20px; bottom: 92px; z-index: 2147483001;
      width: 380px; height: 600px; max-width: calc(100vw - 40px); max-height: calc(100vh - 112px);
      display: flex; flex-direction: column; overflow: hidden;
      background: #fff; color: #1c2430; border-radius: 12px; box-shadow: 0 12px 40px rgba(0, 0, 0, .28);
      font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
    }
    .bar {
      display: flex; align-items: center; justify-content: space-between; gap: 8px;
      padding: 6px 6px 6px 16px; background: #c8102e; color: #fff;
    }
    .title { margin: 0; font-size: 16px; font-weight: 600; }
    .close {
      width: 40px; height: 40px; padding: 0; border: 0; border-radius: 50%;
      display: flex; align-items: center; justify-content: center; background: transparent; color: inherit;
    }
    iframe { flex: 1; display: block; width: 100%; min-height: 0; border: 0; background: #f5f6f8; }
    @media (max-width: 480px) {
      .panel { inset: 0; width: auto; height: auto; max-width: none; max-height: none; border-radius: 0; }
    }
    @media (prefers-reduced-motion: no-preference) {
      .panel { animation: allo-rise .18s ease-out; }
      @keyframes allo-rise { from { opacity: 0; transform: translateY(12px); } }
    }
  `;
  const chatIcon =
    '<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="28" height="28">' +
    '<path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z"/></svg>';
  const closeIcon =
    '<svg aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="22" height="22">' +
    '<path fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" d="M6 6l12 12M18 6 6 18"/></svg>';

  // Its own element name, and inline !important: the host page's selectors cannot hide or restyle it.
  const host = document.createElement("allo-chat-widget");
  host.style.setProperty("all", "initial", "important");
  const root = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet.prototype.replaceSync === "function") {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = css;
    root.append(style);
  }

  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.setAttribute("aria-label", text.open);
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "allo-chat-panel");
  launcher.innerHTML = chatIcon; // a constant of this file, not data

  const panel = document.createElement("div");
  panel.id = "allo-chat-panel";
  panel.className = "panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "allo-chat-title");
  const bar = document.createElement("div");
  bar.className = "bar";
  const title = document.createElement("p");
  title.id = "allo-chat-title";
  title.className = "title";
  title.textContent = text.title;
  const closeButton = document.createElement("button");
  closeButton.type = "button";
  closeButton.className = "close";
  closeButton.setAttribute("aria-label", text.close);
  closeButton.innerHTML = closeIcon;
  bar.append(title, closeButton);
  panel.append(bar);
  root.append(launcher, panel);

  let frame = null;

  function open() {
    // The frame (and so the conversation) is only created once the visitor asks for it.
    if (!frame) {
      const query = new URLSearchParams({ embed: "1" });
      if (tenant) query.set("tenant", tenant);
      query.set("lang", lang);
      frame = document.createElement("iframe");
      frame.title = text.title;
      frame.src = `${origin}/chat?${query}`;
      panel.append(frame);
    }
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    frame.focus();
  }

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  closeButton.addEventListener("click", close);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) close();
  });
  // Keys typed inside the frame do not reach this page: the chat page tells us about Escape.
  window.addEventListener("message", (event) => {
    if (frame && event.origin === origin && event.source === frame.contentWindow) {
      if (event.data && event.data.type === "allo-chat:close") close();
    }
  });

  function mount() {
    document.body.append(host);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  window.AlloChat = Object.freeze({ open, close });
})();
