// Jobs: the task queue (/api/queue), shown only where there is one (PostgreSQL): live workers
// with their host, waiting / running / failed jobs (failed ones with their error), and the
// periodic tasks' newest defers.
"use strict";
(function () {
  const CC = window.CC;

  function rows(id, items, empty, cells) {
    const body = document.querySelector("#" + id + " tbody");
    const columns = document.querySelectorAll("#" + id + " thead th").length;
    body.replaceChildren(...(items.length ? items.map((item) => CC.h("tr",
      { cls: item.status === "failed" ? "failed" : "" },
      cells(item).map((cell) => typeof cell === "string" ?
        CC.h("td", { text: cell }) : cell))) :
      [CC.h("tr", {}, [CC.h("td", { colspan: String(columns), cls: "sub", text: empty })])]));
  }
  const num = (value) => CC.h("td", { cls: "num", text: value == null ? "–" : String(value) });
  const host = (j) => (j.host ? j.host + ":" + j.pid : j.worker_id != null ?
    "worker " + j.worker_id : "–");

  function show(data) {
    const section = CC.$("queue");
    section.hidden = !data.enabled;
    if (!data.enabled) return;
    const waiting = data.queues.reduce((sum, q) => sum + q.waiting, 0);
    const oldest = Math.max(0, ...data.queues.map((q) => q.oldest_waiting_seconds || 0));
    CC.text("q-summary", data.workers.length + " live worker" +
      (data.workers.length === 1 ? "" : "s") + " · " + waiting + " waiting" +
      (waiting ? " (oldest " + CC.duration(oldest) + ")" : "") + " · " + data.retries +
      " retr" + (data.retries === 1 ? "y" : "ies"));
    rows("q-workers", data.workers, "No worker is running: start one with `candlecast worker`.",
      (w) => [String(w.worker_id), w.host ? w.host + ":" + w.pid : "not registered yet",
        w.queues == null ? "–" : w.queues.length ? w.queues.join(", ") : "all",
        num(w.concurrency), CC.time(w.started_at), CC.agoHost(w.last_heartbeat)]);
    rows("q-waiting", data.waiting, "Nothing waits.", (j) => [num(j.id), j.task,
      j.pair || "–", j.queue, j.scheduled_at ? CC.time(j.scheduled_at) : "now",
      num(j.attempts)]);
    rows("q-running", data.running, "Nothing runs.", (j) => [num(j.id), j.task,
      j.pair || "–", j.worker_id == null ? "–" : String(j.worker_id), host(j),
      j.started_at ? CC.agoHost(j.started_at) : "–"]);
    rows("q-failed", data.failed, "No failed job.", (j) => [num(j.id), j.task,
      j.pair || "–", host(j), CC.time(j.finished_at), num(j.attempts),
      CC.h("td", {}, [CC.h("details", {}, [CC.h("summary",
        { text: (j.error || "no error recorded").split("\n").filter(Boolean).pop() || "–" }),
        CC.h("pre", { cls: "details", text: j.error || "" })])])]);
    const periodic = data.periodic || [];
    CC.$("q-periodic").replaceChildren(...(periodic.length ? periodic.map((p) => CC.h("li", {}, [
      CC.h("span", { text: p.task + (p.periodic_id ? " (" + p.periodic_id + ")" : "") }),
      CC.h("span", { cls: "num", text: CC.clock(p.deferred_for) +
        (p.job_status ? " · " + p.job_status : "") }),
    ])) : [CC.h("li", { cls: "sub", text: "No periodic task has been deferred yet." })]));
  }

  async function load() {
    const answer = await CC.get("/api/queue?limit=50");
    if (answer.ok) show(answer.data);
  }
  document.addEventListener("DOMContentLoaded", () => {
    CC.onUpdate(() => load());
    // The queue moves without a new candle or forecast, which is all onUpdate hears about.
    setInterval(() => { if (!document.hidden && !CC.$("queue").hidden) load(); }, 10000);
  });
})();
