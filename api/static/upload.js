// The upload page: call the public API with the key typed in, then open the job's
// status page. No framework; everything the page shows is set with textContent.
"use strict";

(function () {
  var KEY_STORAGE = "soundreel.apiKey";
  var form = document.getElementById("upload-form");
  var keyInput = document.getElementById("api-key");
  var fileInput = document.getElementById("audio");
  var styleInput = document.getElementById("style");
  var sizeInput = document.getElementById("size");
  var customField = document.getElementById("custom-size-field");
  var customInput = document.getElementById("custom-size");
  var titleInput = document.getElementById("title");
  var submit = document.getElementById("submit");
  var bar = document.getElementById("upload-progress");
  var statusLine = document.getElementById("form-status");
  var errorBox = document.getElementById("form-error");

  try {
    keyInput.value = window.localStorage.getItem(KEY_STORAGE) || "";
  } catch (e) { /* storage disabled: the key is typed each time */ }

  function showCustom() {
    customField.hidden = sizeInput.value !== "custom";
  }
  sizeInput.addEventListener("change", showCustom);
  showCustom();

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    statusLine.textContent = "";
    bar.hidden = true;
    submit.disabled = false;
  }

  function apiMessage(status, body) {
    if (body && body.error && body.error.message) {
      return body.error.message + " (" + body.error.code + ")";
    }
    return "The server answered " + status + ".";
  }

  // XMLHttpRequest rather than fetch: it reports upload progress.
  function uploadFile(key, file) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/uploads");
      xhr.setRequestHeader("Authorization", "Bearer " + key);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          bar.value = Math.floor((100 * event.loaded) / event.total);
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          resolve(xhr.response);
        } else {
          reject(new Error("Upload refused: " + apiMessage(xhr.status, xhr.response)));
        }
      });
      xhr.addEventListener("error", function () {
        reject(new Error("The upload did not reach the server; check your connection."));
      });
      var body = new FormData();
      body.append("file", file, file.name);
      xhr.send(body);
    });
  }

  function options() {
    var opts = { style: styleInput.value };
    if (sizeInput.value === "custom") {
      var match = /^\s*(\d+)\s*[xX×]\s*(\d+)\s*$/.exec(customInput.value);
      if (!match) {
        throw new Error("Give the size as width×height, e.g. 1280x720.");
      }
      opts.width = parseInt(match[1], 10);
      opts.height = parseInt(match[2], 10);
    } else {
      opts.preset = sizeInput.value;
    }
    var title = titleInput.value.trim();
    if (title) {
      opts.title = title;
    }
    return opts;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    var key = keyInput.value.trim();
    var file = fileInput.files[0];
    var opts;
    if (!key) { fail("Enter your API key."); return; }
    if (!file) { fail("Choose an audio file."); return; }
    try { opts = options(); } catch (e) { fail(e.message); return; }
    try { window.localStorage.setItem(KEY_STORAGE, key); } catch (e) { /* not kept */ }

    submit.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    statusLine.textContent = "Uploading " + file.name + "…";
    uploadFile(key, file)
      .then(function (uploaded) {
        statusLine.textContent = "Submitting the job…";
        return fetch("/v1/jobs", {
          method: "POST",
          headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
          body: JSON.stringify({ kind: "render", audioKey: uploaded.audioKey, options: opts }),
        });
      })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (response.status !== 202) {
            throw new Error("Job refused: " + apiMessage(response.status, body));
          }
          if (!body || !body.shareUrl) {
            throw new Error("The job " + (body && body.jobId) + " was accepted, but the " +
                            "server gave no status page link.");
          }
          statusLine.textContent = "Job accepted; opening its status page…";
          window.location.assign(body.shareUrl);
        });
      })
      .catch(function (error) { fail(error.message); });
  });
})();
