// Files page: drop a file (or pick one) to upload it through POST /v1/files; show what the data checks said.
"use strict";
(() => {
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  const result = document.getElementById("upload-result");
  const rows = document.querySelector("#files tbody");
  const {api, element, when} = window.tunesmith;

  function addRow(file) {
    const row = element("tr");
    row.dataset.fileId = file.id;
    const name = element("td"), link = element("a", file.filename);
    link.href = `/ui/files/${encodeURIComponent(file.id)}`;
    name.append(link);
    const id = element("td"), code = element("code", file.id);
    id.append(code);
    const check = element("td", file.status + (file.status_details ? `: ${file.status_details}` : ""),
                          `status-${file.status}`);
    row.append(name, id, element("td", file.bytes.toLocaleString("en"), "num"), check, element("td", when(file.created_at)));
    rows.prepend(row);
    const empty = document.getElementById("no-files");
    if (empty) empty.remove();
  }

  function report(file) {
    const line = element("p", "", file.status === "processed" ? "status-processed" : "error");
    line.append(element("strong", file.filename), ` uploaded as ${file.id}: `);
    line.append(file.status === "processed" ? "the data checks passed. " : `${file.status_details} `);
    const link = element("a", "See its check and data report");
    link.href = `/ui/files/${encodeURIComponent(file.id)}`;
    line.append(link);
    result.append(line);
  }

  async function upload(file) {
    const body = new FormData();
    body.append("purpose", "fine-tune");
    body.append("file", file, file.name);
    const pending = element("p", `Uploading ${file.name} ...`, "muted");
    result.append(pending);
    try {
      const stored = await api("/v1/files", {method: "POST", body});
      pending.remove();
      report(stored);
      addRow(stored);
    } catch (error) {
      pending.remove();
      result.append(element("p", `${file.name}: ${error.message}`, "error"));
    }
  }

  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) upload(file);
  });
  input.addEventListener("change", () => {
    for (const file of input.files) upload(file);
    input.value = "";
  });
})();
