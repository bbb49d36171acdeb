/* keyed_storage's direct uploads: a picked or dropped file goes straight to storage.
 *
 * For each .keyed-storage-direct box (keyed_storage.direct_forms.DirectUploadWidget): ask the
 * site for a ticket (the box's field token, with the session and CSRF token), POST the ticket's
 * fields and then the file, in a field named "file", to the ticket's URL, with upload progress
 * shown in the box's <progress>; then put the reference in the hidden input and empty the file
 * input, so the form sends only the reference. Without this script the file input uploads
 * through Django as usual.
 */
(function () {
  "use strict";

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) {
      return input.value;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function setUp(box) {
    var input = box.querySelector("input[type=file]");
    var token = box.querySelector("input[data-keyed-storage-token]");
    var reference = box.querySelector("input[data-keyed-storage-reference]");
    var progress = box.querySelector("progress");
    var cancel = box.querySelector("button.keyed-storage-cancel");
    var status = box.querySelector(".keyed-storage-status");
    var form = box.closest("form");
    var xhr = null;
    var events = 0;

    function show(state, text) {
      box.dataset.state = state;
      status.textContent = text;
      progress.hidden = state !== "uploading";
      cancel.hidden = state !== "uploading";
    }

    function fail(text) {
      xhr = null;
      reference.value = "";
      input.value = "";
      show("failed", text);
    }

    function upload(file) {
      if (xhr) {
        var previous = xhr;
        xhr = null; // its abort is not this upload's failure
        previous.abort();
      }
      reference.value = "";
      events = 0;
      progress.max = file.size || 1;
      progress.value = 0;
      show("uploading", "Preparing " + file.name + "…");
      var ask = new FormData();
      ask.append("token", token.value);
      ask.append("filename", file.name);
      ask.append("size", String(file.size));
      ask.append("content_type", file.type);
      fetch(box.dataset.ticketUrl, {
        method: "POST",
        body: ask,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form) },
      })
        .then(function (response) {
          // Not JSON: a page of the site's own (a CSRF failure, a sign-in page, an error).
          return response.json().catch(function () {
            return {};
          }).then(function (answer) {
            if (!response.ok || !answer.url) {
              throw new Error(answer.error || "The upload was refused (" + response.status + ").");
            }
            send(file, answer);
          });
        })
        .catch(function (error) {
          fail(error.message);
        });
    }

    function send(file, ticket) {
      var body = new FormData();
      Object.keys(ticket.fields).forEach(function (name) {
        body.append(name, ticket.fields[name]);
      });
      body.append("file", file); // last: S3 ignores fields after the file
      var request = new XMLHttpRequest();
      xhr = request;
      request.upload.addEventListener("progress", function (event) {
        events += 1;
        box.dataset.progressEvents = String(events);
        if (event.lengthComputable) {
          progress.max = event.total;
          progress.value = event.loaded;
          status.textContent = Math.floor((100 * event.loaded) / event.total) + "% of " + file.name;
        }
      });
      request.addEventListener("load", function () {
        if (xhr !== request) {
          return;
        }
        if (request.status >= 200 && request.status < 300) {
          xhr = null;
          reference.value = ticket.reference;
          input.value = "";
          show("done", file.name + " is uploaded: save to keep it.");
        } else {
          fail("The upload was refused (" + request.status + "). Please try again.");
        }
      });
      request.addEventListener("error", function () {
        if (xhr === request) {
          fail("The upload failed. Please try again.");
        }
      });
      request.addEventListener("abort", function () {
        if (xhr === request) {
          fail("Upload cancelled.");
        }
      });
      request.open("POST", ticket.url);
      request.send(body);
      show("uploading", "Uploading " + file.name + "…");
    }

    input.addEventListener("change", function () {
      if (input.files.length) {
        upload(input.files[0]);
      }
    });
    box.addEventListener("dragover", function (event) {
      event.preventDefault();
    });
    box.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) {
        upload(event.dataTransfer.files[0]);
      }
    });
    cancel.addEventListener("click", function () {
      if (xhr) {
        xhr.abort();
      }
    });
    if (form) {
      form.addEventListener("submit", function (event) {
        if (xhr) {
          event.preventDefault();
          status.textContent = "Wait for the upload to finish, or cancel it, before saving.";
        }
      });
    }
  }

  function setUpAll() {
    document.querySelectorAll(".keyed-storage-direct").forEach(function (box) {
      if (!box.dataset.ready) {
        box.dataset.ready = "1";
        setUp(box);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
  // Inline rows the admin adds later are new rows: they upload through Django (no token).
})();
