// Jobs page: keep each unfinished job's status (and its tuned model, once there) current.
"use strict";
(() => {
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const {api, element} = window.tunesmith;

  function unfinished() {
    return [...document.querySelectorAll("#jobs tr[data-job-id]")]
      .filter((row) => !FINISHED.has(row.querySelector(".job-status").textContent));
  }

  async function refresh() {
    if (!unfinished().length) return;
    try {
      const page = await api("/v1/fine_tuning/jobs?limit=100");
      for (const job of page.data) {
        const row = document.querySelector(`#jobs tr[data-job-id="${CSS.escape(job.id)}"]`);
        if (!row) continue;
        const status = row.querySelector(".job-status");
        status.textContent = job.status;
        status.className = `job-status status-${job.status}`;
        const tuned = row.children[4];
        if (job.fine_tuned_model && !tuned.textContent) tuned.append(element("code", job.fine_tuned_model));
      }
    } catch (_) { /* signed out or the server is restarting: the next round tries again */ }
    setTimeout(refresh, 3000);
  }
  setTimeout(refresh, 3000);
})();
