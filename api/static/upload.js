// The upload page: check the form as the API would, upload the audio and any artwork,
// background image and captions, submit the job with the keys, then open the job's
// status page. No framework; everything the page shows is set with textContent.
//
// Controls say which job field they set (see upload.html): data-option (an option),
// data-field (the request), data-upload (a file; its key goes to data-key-option, or
// audioKey). Limits come from the server-rendered min/max/maxlength attributes.
"use strict";

(function () {
  var KEY_STORAGE = "soundreel.apiKey";
  var form = document.getElementById("upload-form");
  var keyInput = document.getElementById("api-key");
  var audioInput = document.getElementById("audio");
  var audioUrlInput = document.getElementById("audio-url");
  var sizeInput = document.getElementById("size");
  var customField = document.getElementById("custom-size-field");
  var customInput = document.getElementById("custom-size");
  var submit = document.getElementById("submit");
  var bar = document.getElementById("upload-progress");
  var statusLine = document.getElementById("form-status");
  var errorBox = document.getElementById("form-error");
  var HTTP_URL = /^https?:\/\/[^\/\s]+/i;

  try {
    keyInput.value = window.localStorage.getItem(KEY_STORAGE) || "";
  } catch (e) { /* storage disabled: the key is typed each time */ }

  function showCustom() {
    customField.hidden = sizeInput.value !== "custom";
  }
  sizeInput.addEventListener("change", showCustom);
  showCustom();

  // An optional colour (a gradient's second colour) is sent only while ticked.
  Array.prototype.forEach.call(form.querySelectorAll("[data-enables]"), function (box) {
    var target = document.getElementById(box.dataset.enables);
    function sync() { target.disabled = !box.checked; }
    box.addEventListener("change", sync);
    sync();
  });

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

  function labelOf(input) {
    var label = form.querySelector('label[for="' + input.id + '"]');
    return label ? label.firstChild.textContent.trim() : input.id;
  }

  // --- checks, before anything is uploaded -------------------------------------

  function extensionOf(name) {
    var base = name.split("/").pop();
    var dot = base.lastIndexOf(".");
    return dot > 0 && dot < base.length - 1 ? base.slice(dot).toLowerCase() : "";
  }

  function extensionsOf(input) {
    return input.dataset.extensions.split(" ");
  }

  // What a file is by its name ("an image", "captions"...), or null.
  function kindOf(name) {
    var inputs = form.querySelectorAll("[data-upload]");
    for (var i = 0; i < inputs.length; i++) {
      if (extensionsOf(inputs[i]).indexOf(extensionOf(name)) >= 0) {
        return inputs[i].dataset.kind;
      }
    }
    return null;
  }

  // As client/roles.py role_problem: "cover.png is an image, not audio (.mp3, ...)".
  function roleProblem(input, name) {
    var allowed = extensionsOf(input);
    if (allowed.indexOf(extensionOf(name)) >= 0) {
      return null;
    }
    var actually = kindOf(name);
    return name + " is " + (actually ? actually + ", not " : "not ") + input.dataset.kind +
      " (" + allowed.join(", ") + ").";
  }

  function bounded(input, value) {
    var min = input.min === "" ? null : Number(input.min);
    var max = input.max === "" ? null : Number(input.max);
    var exclusive = input.hasAttribute("data-exclusive-min");
    if ((min !== null && (exclusive ? value <= min : value < min)) ||
        (max !== null && value > max)) {
      var range = exclusive ? "more than " + min + " and at most " + max
        : "from " + min + " to " + max;
      throw new Error(labelOf(input) + ": give a number " + range + ".");
    }
    return value;
  }

  // The value a control sends, or undefined to leave the API's default.
  function valueOf(input) {
    if (input.disabled) {
      return undefined;
    }
    if (input.dataset.type === "bool") {
      return input.checked;
    }
    var raw = input.value.trim();
    if (raw === "") {
      return undefined;
    }
    if (input.dataset.type === "int" || input.dataset.type === "number") {
      var value = Number(raw);
      if (!isFinite(value) || (input.dataset.type === "int" && !Number.isInteger(value))) {
        throw new Error(labelOf(input) + ": give a" +
                        (input.dataset.type === "int" ? " whole" : "") + " number.");
      }
      return bounded(input, value);
    }
    return input.type === "color" ? raw.toLowerCase() : raw;
  }

  // As RenderSpec: a preset, or even sides within the limits and the pixel budget.
  function setCanvas(opts) {
    if (sizeInput.value !== "custom") {
      opts.preset = sizeInput.value;
      return;
    }
    var match = /^\s*(\d+)\s*[xX×]\s*(\d+)\s*$/.exec(customInput.value);
    if (!match) {
      throw new Error("Give the size as width×height, e.g. 1280x720.");
    }
    var width = parseInt(match[1], 10);
    var height = parseInt(match[2], 10);
    var min = Number(form.dataset.minSide);
    var max = Number(form.dataset.maxSide);
    if (width < min || height < min || width > max || height > max) {
      throw new Error("Width and height must each be " + min + " to " + max + " pixels.");
    }
    if (width % 2 || height % 2) {
      throw new Error("Width and height must be even (H.264 needs even sides); got " +
                      width + "×" + height + ".");
    }
    if (width * height > Number(form.dataset.maxPixels)) {
      throw new Error("The canvas may be at most 3840×2160 (or 2160×3840) pixels.");
    }
    opts.width = width;
    opts.height = height;
  }

  // The job request and the files to upload first, or an Error saying what to fix.
  function plan() {
    var body = {};
    var opts = {};
    Array.prototype.forEach.call(form.querySelectorAll("[data-option]"), function (input) {
      var value = valueOf(input);
      if (value !== undefined) { opts[input.dataset.option] = value; }
    });
    Array.prototype.forEach.call(form.querySelectorAll("[data-field]"), function (input) {
      var value = valueOf(input);
      if (value !== undefined) { body[input.dataset.field] = value; }
    });
    setCanvas(opts);
    if (opts.end !== undefined && opts.end <= (opts.start || 0)) {
      throw new Error("The clip must end after it starts.");
    }
    if (body.webhookUrl !== undefined && !HTTP_URL.test(body.webhookUrl)) {
      throw new Error("Webhook URL: give an http(s) URL.");
    }

    var audioUrl = audioUrlInput.value.trim();
    if (audioInput.files[0] && audioUrl) {
      throw new Error("Choose an audio file or give a link to one, not both.");
    }
    if (!audioInput.files[0] && !audioUrl) {
      throw new Error("Choose an audio file (or give a link to one).");
    }
    if (audioUrl) {
      if (!HTTP_URL.test(audioUrl)) {
        throw new Error("Audio link: give an http(s) URL.");
      }
      var name = decodeURIComponent(audioUrl.split(/[?#]/)[0].split("/").pop() || "");
      var kind = kindOf(name);
      if (kind && kind !== audioInput.dataset.kind) {
        throw new Error("Audio link: " + roleProblem(audioInput, name));
      }
      body.audioUrl = audioUrl;
    }

    var uploads = [];
    Array.prototype.forEach.call(form.querySelectorAll("[data-upload]"), function (input) {
      var file = input.files[0];
      if (!file) { return; }
      var problem = roleProblem(input, file.name);
      if (problem) { throw new Error(labelOf(input) + ": " + problem); }
      uploads.push({ input: input, file: file });
    });
    if (Object.keys(opts).length) { body.options = opts; }
    return { body: body, uploads: uploads };
  }

  // --- talking to the API ------------------------------------------------------

  // XMLHttpRequest rather than fetch: it reports upload progress.
  function uploadFile(key, file, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/uploads");
      xhr.setRequestHeader("Authorization", "Bearer " + key);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", function (event) {
        onProgress(event.loaded);
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          resolve(xhr.response);
        } else {
          reject(new Error("Upload of " + file.name + " refused: " +
                           apiMessage(xhr.status, xhr.response)));
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

  // Upload the files one after another (the audio first), one bar for all of them;
  // each key goes where its control says.
  function uploadAll(key, uploads, body) {
    var total = uploads.reduce(function (sum, u) { return sum + u.file.size; }, 0) || 1;
    var done = 0;
    return uploads.reduce(function (chain, upload) {
      return chain.then(function () {
        statusLine.textContent = "Uploading " + upload.file.name + "…";
        return uploadFile(key, upload.file, function (loaded) {
          bar.value = Math.floor((100 * Math.min(done + loaded, total)) / total);
        }).then(function (uploaded) {
          done += upload.file.size;
          var option = upload.input.dataset.keyOption;
          if (option) {
            body.options = body.options || {};
            body.options[option] = uploaded.audioKey;
          } else {
            body.audioKey = uploaded.audioKey;
          }
        });
      });
    }, Promise.resolve());
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    var key = keyInput.value.trim();
    var job;
    if (!key) { fail("Enter your API key."); return; }
    try { job = plan(); } catch (e) { fail(e.message); return; }
    try { window.localStorage.setItem(KEY_STORAGE, key); } catch (e) { /* not kept */ }

    submit.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    uploadAll(key, job.uploads, job.body)
      .then(function () {
        statusLine.textContent = "Submitting the job…";
        return fetch("/v1/jobs", {
          method: "POST",
          headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
          body: JSON.stringify(job.body),
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
