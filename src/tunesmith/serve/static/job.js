// Job page: the loss curves, events and checkpoints, live from the job's event stream (server-sent events).
"use strict";
(() => {
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const chart = document.getElementById("loss-chart");
  const events = document.getElementById("events");
  const {api, element, when} = window.tunesmith;
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  // Events after which the job's hyperparameters say more: what an `auto` became.
  const SETTLING = new Set(["learning_rate_chosen", "training_started", "batch_size_reduced"]);

  // One x per trained step across refinement rounds: each round's steps start where the last one ended.
  // A resumed run repeats steps after its checkpoint; their points replace the earlier ones.
  const points = new Map();  // x -> [training loss, validation loss]
  let offset = 0, lastX = 0, plot = null, drawing = false;

  function point(x) {
    if (!points.has(x)) points.set(x, [null, null]);
    lastX = Math.max(lastX, x);
    return points.get(x);
  }

  function series() {
    const xs = [...points.keys()].sort((a, b) => a - b);
    return [xs, xs.map((x) => points.get(x)[0]), xs.map((x) => points.get(x)[1])];
  }

  function draw() {
    drawing = false;
    const data = series();
    chart.dataset.points = String(data[1].filter((v) => v !== null).length);
    chart.dataset.valPoints = String(data[2].filter((v) => v !== null).length);
    if (!data[0].length) return;
    if (plot === null) {
      plot = new uPlot({
        width: Math.max(320, chart.clientWidth), height: 280,
        scales: {x: {time: false}},
        axes: [{label: "step"}, {label: "loss"}],
        series: [{label: "step"},
                 {label: "training loss", stroke: "#1f6feb", width: 1.5, spanGaps: true},
                 {label: "validation loss", stroke: "#d1242f", width: 2, spanGaps: true, points: {show: true, size: 6}}],
      }, data, chart);
    } else {
      plot.setData(data);
    }
  }

  function redraw() {  // at most once a frame: a finished job's stream replays every step at once
    if (!drawing) { drawing = true; requestAnimationFrame(draw); }
  }

  function show(event) {
    const item = element("li", "", `level-${event.level}`);
    item.append(element("time", when(event.created_at)), " ", element("span", event.message));
    events.prepend(item);
  }

  async function refreshCheckpoints() {
    const page = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/checkpoints?limit=100`);
    const body = document.querySelector("#checkpoints tbody");
    body.replaceChildren(...page.data.map((c) => {
      const row = element("tr");
      const loss = (v) => (v === null || v === undefined ? "–" : v.toFixed(4));
      row.append(element("td", String(c.step_number), "num"), element("td", loss(c.metrics.train_loss), "num"),
                 element("td", loss(c.metrics.valid_loss), "num"), element("td", when(c.created_at)));
      return row;
    }));
  }

  function setStatus(status) {
    const shown = document.getElementById("status");
    shown.textContent = status;
    shown.className = `status-${status}`;
    root.dataset.status = status;
  }

  function showHyperparameters(values) {  // as the page's template writes them
    document.getElementById("hyperparameters").textContent = Object.entries(values)
      .filter(([, value]) => value !== null && value !== undefined).map(([key, value]) => `${key}=${value}`)
      .join(", ");
  }

  async function loadJob() {
    const job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}`);
    setStatus(job.status);
    document.getElementById("eta").textContent = when(job.estimated_finish);
    showHyperparameters(job.hyperparameters);
    return job;
  }

  async function refreshJob() {  // status, estimated finish and hyperparameters, while the job is not finished
    try {
      if (FINISHED.has((await loadJob()).status)) return;
    } catch (_) { /* try again at the next round */ }
    setTimeout(refreshJob, 2000);
  }

  const stream = new EventSource(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?stream=true`);
  stream.addEventListener("metrics", (message) => {
    const event = JSON.parse(message.data);
    const data = event.data || {};
    if (data.type === "step" && typeof data.loss === "number") point(offset + data.step)[0] = data.loss;
    if (data.type === "evaluation" && typeof data.val_loss === "number") point(offset + data.step)[1] = data.val_loss;
    redraw();
    show(event);
  });
  stream.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    const kind = event.data && event.data.type;
    if (kind === "round_started" && event.data.index > 1) offset = lastX;
    if (kind === "checkpoint") refreshCheckpoints().catch(() => {});
    if (SETTLING.has(kind)) loadJob().catch(() => {});
    show(event);
  });
  stream.addEventListener("done", (message) => {
    stream.close();
    setStatus(JSON.parse(message.data).status);
    // The page was drawn while the job ran: load it again for the report and the final checkpoints.
    if (root.dataset.finished !== "true") location.reload();
  });

  if (root.dataset.finished !== "true") setTimeout(refreshJob, 2000);
})();
