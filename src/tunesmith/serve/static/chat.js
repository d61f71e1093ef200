// Chat page: each message goes to every pane's model (the tuned one and its base), answers streamed side by side.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  const prompt = document.getElementById("prompt");
  const {element} = window.tunesmith;
  const panes = [...document.querySelectorAll(".chat-pane")].map((el) => ({el, model: el.dataset.model, history: []}));

  function bubble(pane, role, text) {
    const item = element("li", "", `turn turn-${role}`);
    const body = element("div", text, "answer");
    item.append(element("strong", role === "user" ? "you" : "model"), body);
    pane.el.querySelector(".transcript").append(item);
    return body;
  }

  async function* serverEvents(response) {  // POST answers stream as server-sent events: "data: {...}" blocks
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }

  async function answer(pane, settings) {
    const shown = bubble(pane, "assistant", "");
    pane.el.dataset.state = "answering";
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: pane.model, messages: pane.history, stream: true, ...settings}),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body && body.error ? body.error.message : `${response.status} ${response.statusText}`);
      }
      for await (const data of serverEvents(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        const delta = chunk.choices.length ? chunk.choices[0].delta.content : null;
        if (delta) shown.textContent += delta;
      }
      pane.history.push({role: "assistant", content: shown.textContent});
      if (!shown.textContent) shown.append(element("em", "(an empty answer)", "muted"));
      pane.el.dataset.state = "answered";
    } catch (error) {
      shown.classList.add("error");
      shown.textContent = error.message;
      pane.history.pop();  // the question goes unanswered: drop it, so the conversations stay in step
      pane.el.dataset.state = "failed";
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    const settings = {max_tokens: Number(document.getElementById("max-tokens").value) || 128,
                      temperature: Number(document.getElementById("temperature").value) || 0};
    for (const pane of panes) {
      pane.history.push({role: "user", content: text});
      bubble(pane, "user", text);
      answer(pane, settings);
    }
    prompt.value = "";
  });
  document.getElementById("clear-chat").addEventListener("click", () => {
    for (const pane of panes) {
      pane.history = [];
      pane.el.querySelector(".transcript").replaceChildren();
      delete pane.el.dataset.state;
    }
  });
})();
