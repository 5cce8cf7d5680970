// The status page: poll the job's status.json (token in a header, not the URL) and
// update the page until the job ends; when complete, show the player and the link.
"use strict";

(function () {
  var POLL_MS = 1000;
  var job = document.getElementById("job");
  if (!job) { return; }
  var token = new URLSearchParams(window.location.search).get("token") || "";
  var statusUrl = job.dataset.statusUrl;
  var labels = JSON.parse(job.dataset.stageLabels || "{}");
  var el = function (id) { return document.getElementById(id); };
  // the heading over an ended job's error, by state (api.pages.ERROR_HEADINGS)
  var HEADINGS = JSON.parse(job.dataset.errorHeadings);

  function seconds(value) {
    value = Math.max(0, Math.round(value));
    if (value < 60) { return value + " s"; }
    var minutes = Math.floor(value / 60);
    if (minutes < 60) { return minutes + " min " + (value % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function eta(state) {
    // queuePosition is set while the job waits, and null otherwise
    if (state.queuePosition !== null && state.queuePosition !== undefined) {
      var ahead = state.queuePosition === 1 ? "1 job ahead" : state.queuePosition + " jobs ahead";
      return state.eta ? ahead + ", about " + seconds(state.eta) + " to go" : ahead;
    }
    if (!state.terminal && state.eta) {
      return "about " + seconds(state.eta) + " left";
    }
    return "";
  }

  function render(state) {
    var percent = Math.floor(100 * (state.progress || 0));
    var status = el("job-status");
    status.textContent = state.status.replace("_", " ");
    status.className = "badge badge-" + state.status;
    job.dataset.status = state.status;
    el("job-stage").textContent = labels[state.stage] || state.stage || "";
    el("job-eta").textContent = eta(state);
    el("job-progress").value = percent;
    el("job-percent").textContent = percent + "%";

    if (HEADINGS[state.status]) {
      el("job-error-heading").textContent = HEADINGS[state.status];
      el("job-error-message").textContent = state.error ? state.error.message : "";
      el("job-error-code").textContent = state.error ? state.error.code : "";
      el("job-error").hidden = false;
    }
    if (state.downloadUrl) {  // set once the job is complete
      var video = el("job-video");
      if (!video.getAttribute("src")) {
        // the loudest moment, not the near-silent first frame, until it plays
        if (state.result && state.result.posterUrl) { video.poster = state.result.posterUrl; }
        video.src = state.downloadUrl;
        el("job-download").href = state.downloadUrl;
      }
      if (state.result && state.result.duration) {
        el("job-duration").textContent = state.result.duration.toFixed(1) + " s";
      }
      el("job-result").hidden = false;
    }
  }

  function poll() {
    fetch(statusUrl, { headers: { "X-Share-Token": token }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 404) { throw new Error("gone"); }
        if (!response.ok) { return null; }
        return response.json();
      })
      .then(function (state) {
        if (state) { render(state); }
        if (!state || !state.terminal) { window.setTimeout(poll, POLL_MS); }
      })
      .catch(function (error) {
        if (error.message !== "gone") { window.setTimeout(poll, POLL_MS * 3); }
      });
  }

  if (job.dataset.terminal !== "true") {
    poll();
  }
})();
