/* keyed_storage's direct uploads: a picked or dropped file goes straight to storage.
 *
 * For each .keyed-storage-direct box (keyed_storage.direct_forms.DirectUploadWidget): ask the
 * site for a ticket (the box's field token, with the session and CSRF token), POST the ticket's
 * fields and then the file, in a field named "file", to the ticket's URL, with upload progress
 * shown in the box's <progress>; then put the reference in the hidden input and empty the file
 * input, so the form sends only the reference. Without this script the file input uploads
 * through Django as usual.
 *
 * A large file gets a multipart ticket instead (keyed_storage.multipart): its parts are PUT,
 * PARALLEL at a time, to part URLs the site signs a few at a time, with one progress bar over
 * the whole file. The upload is remembered in localStorage (by page, field, and the file's name,
 * size and date), so after a dropped connection or a reload, picking the same file again asks
 * the site which parts it has and sends only the others. Cancel aborts it: no part remains.
 *
 * Where the browser may not send to storage at all (an S3 bucket without the CORS rule for the
 * site: the preflight is refused before a byte of the file goes), the box falls back to the
 * plain upload: the file stays in the file input and goes with the form, through Django.
 */
(function () {
  "use strict";

  var PARALLEL = 4; // parts in flight at once: memory stays at a few parts' worth
  var URL_BATCH = 8; // part URLs asked for at a time (they expire after minutes)
  var MEMORY = "keyed-storage-upload:";

  // The box -----------------------------------------------------------------------------------
  // One object per .keyed-storage-direct box: its elements, and the upload it is running.

  function widget(box) {
    return {
      box: box,
      input: box.querySelector("input[type=file]"),
      token: box.querySelector("input[data-keyed-storage-token]"),
      reference: box.querySelector("input[data-keyed-storage-reference]"),
      progress: box.querySelector("progress"),
      cancel: box.querySelector("button.keyed-storage-cancel"),
      status: box.querySelector(".keyed-storage-status"),
      form: box.closest("form"),
      running: null, // the upload in progress: {cancel: function (told)}
      events: 0, // progress events seen for the current file
      plain: false, // storage refused this page: files go with the form, through Django
    };
  }

  // Requests to the site (ticket, part URLs, stored parts, abort) ------------------------------

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) {
      return input.value;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function ask(w, url, fields) {
    var body = new FormData();
    body.append("token", w.token.value);
    Object.keys(fields).forEach(function (name) {
      body.append(name, fields[name]);
    });
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(w.form) },
    }).then(function (response) {
      // Not JSON: a page of the site's own (a CSRF failure, a sign-in page, an error).
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (answer) {
          if (!response.ok) {
            var error = new Error(answer.error || "The upload was refused (" + response.status + ").");
            error.code = answer.code;
            throw error;
          }
          return answer;
        });
    });
  }

  // The upload is dropped on the server, so no part is left (nor billed), and forgotten here.
  function abandon(w, ticket, key) {
    remember(key, null);
    ask(w, ticket.abort, { reference: ticket.reference }).catch(function () {});
  }

  // What the page remembers of a multipart upload, to resume it (localStorage) -----------------

  function remembered(key) {
    try {
      return JSON.parse(window.localStorage.getItem(key) || "null");
    } catch (error) {
      return null; // storage disabled, or not ours
    }
  }

  function remember(key, value) {
    try {
      if (value) {
        window.localStorage.setItem(key, JSON.stringify(value));
      } else {
        window.localStorage.removeItem(key);
      }
    } catch (error) {
      // Without storage an upload still works; it only cannot resume after a reload.
    }
  }

  function memoryKey(w, file) {
    return [MEMORY + window.location.pathname, w.token.name, file.name, file.size, file.lastModified].join(":");
  }

  // What the box shows: state, status line, progress ------------------------------------------

  function show(w, state, text) {
    w.box.dataset.state = state;
    w.status.textContent = text;
    w.progress.hidden = state !== "uploading";
    w.cancel.hidden = state !== "uploading";
  }

  function fail(w, text) {
    w.running = null;
    w.reference.value = "";
    w.input.value = "";
    show(w, "failed", text);
  }

  // Storage refused the browser before any byte was sent (no CORS rule for this site, most
  // likely): keep the file in the input, so the form sends it through Django as without
  // this script. Later files in this box go that way at once.
  function fallBack(w, file) {
    w.running = null;
    w.plain = true;
    w.reference.value = "";
    try {
      var files = new DataTransfer(); // a dropped file is not in the input yet
      files.items.add(file);
      w.input.files = files.files;
    } catch (error) {
      fail(w, "This file cannot be uploaded from this page. Please pick it again.");
      return;
    }
    show(w, "plain", file.name + " will be uploaded when you save.");
  }

  function done(w, file, ticket) {
    w.running = null;
    w.reference.value = ticket.reference;
    w.input.value = "";
    show(w, "done", file.name + " is uploaded: save to keep it.");
  }

  function showProgress(w, file, loaded, total) {
    w.events += 1;
    w.box.dataset.progressEvents = String(w.events);
    w.progress.max = total;
    w.progress.value = loaded;
    w.status.textContent = Math.floor((100 * loaded) / total) + "% of " + file.name;
  }

  // Starting an upload: resume a remembered one, or ask for a ticket ---------------------------

  function upload(w, file) {
    if (w.plain) {
      fallBack(w, file);
      return;
    }
    var attempt = prepare(w, file);
    var key = memoryKey(w, file);
    resume(w, key)
      .then(function (found) {
        return found || ticketFor(w, file, key);
      })
      .then(function (found) {
        if (attempt.cancelled) {
          if (found.ticket.parts) {
            abandon(w, found.ticket, key);
          }
          return;
        }
        if (found.ticket.parts) {
          sendParts(w, file, found.ticket, found.stored, key);
        } else {
          send(w, file, found.ticket);
        }
      })
      .catch(function (error) {
        if (!attempt.cancelled) {
          fail(w, error.message);
        }
      });
  }

  // Stop the upload running, reset the box, and let cancel stop what is being prepared: until
  // the file is on its way nothing is sent, and a multipart upload begun on the server for it
  // is dropped there (upload() does it, seeing the attempt cancelled).
  function prepare(w, file) {
    if (w.running) {
      var previous = w.running;
      w.running = null; // its end is not this upload's failure
      previous.cancel(false);
    }
    w.reference.value = "";
    w.events = 0;
    w.progress.max = file.size || 1;
    w.progress.value = 0;
    show(w, "uploading", "Preparing " + file.name + "…");
    var attempt = { cancelled: false };
    w.running = {
      cancel: function (told) {
        attempt.cancelled = true;
        w.running = null;
        if (told !== false) {
          fail(w, "Upload cancelled.");
        }
      },
    };
    return attempt;
  }

  // The remembered multipart upload of this file and the parts the server has of it, or null.
  function resume(w, key) {
    var saved = remembered(key);
    if (!saved) {
      return Promise.resolve(null);
    }
    return ask(w, saved.uploaded_parts, { reference: saved.reference }).then(
      function (answer) {
        return { ticket: saved, stored: answer.parts };
      },
      function () {
        remember(key, null); // finished, cancelled or expired: start again
        return null;
      }
    );
  }

  function ticketFor(w, file, key) {
    return ask(w, w.box.dataset.ticketUrl, {
      filename: file.name,
      size: String(file.size),
      content_type: file.type,
    }).then(function (ticket) {
      if (ticket.parts) {
        remember(key, ticket);
      } else if (!ticket.url) {
        throw new Error("The upload was refused.");
      }
      return { ticket: ticket, stored: [] };
    });
  }

  // A small file: one POST of the ticket's fields and the file --------------------------------

  function send(w, file, ticket) {
    var request = new XMLHttpRequest();
    var mine = {
      cancel: function () {
        request.abort();
      },
    };
    w.running = mine;
    var sentAll = false;
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        sentAll = event.loaded >= event.total;
        showProgress(w, file, event.loaded, event.total);
      }
    });
    request.addEventListener("load", function () {
      if (w.running !== mine) {
        return;
      }
      if (request.status >= 200 && request.status < 300) {
        done(w, file, ticket);
      } else {
        fail(w, "The upload was refused (" + request.status + "). Please try again.");
      }
    });
    request.addEventListener("error", function () {
      if (w.running === mine) {
        postFailed(w, file, ticket, sentAll);
      }
    });
    request.addEventListener("abort", function () {
      if (w.running === mine) {
        fail(w, "Upload cancelled.");
      }
    });
    request.open("POST", ticket.url);
    request.send(postBody(ticket, file));
    show(w, "uploading", "Uploading " + file.name + "…");
  }

  function postBody(ticket, file) {
    var body = new FormData();
    Object.keys(ticket.fields).forEach(function (name) {
      body.append(name, ticket.fields[name]);
    });
    body.append("file", file); // last: S3 ignores fields after the file
    return body;
  }

  function postFailed(w, file, ticket, sentAll) {
    if (w.events === 0) {
      fallBack(w, file); // refused before a byte went: the preflight, or no way to storage
    } else if (sentAll) {
      // Every byte went, but the answer may not be read here (a storage that lets the
      // preflight through and not its answer). The server checks that the file arrived
      // whole when the form is saved, and says so if it did not.
      done(w, file, ticket);
    } else {
      fail(w, "The upload failed. Please try again.");
    }
  }

  // A large file: its parts PUT, PARALLEL at a time, resumable ---------------------------------

  function sendParts(w, file, ticket, stored, key) {
    var job = partsJob(w, file, ticket, stored, key);
    w.running = job.handle;
    w.box.dataset.partsSent = "0";
    show(w, "uploading", "Uploading " + file.name + "…");
    partsProgress(job);
    job.workers = Math.max(1, Math.min(PARALLEL, job.waiting.length));
    for (var i = 0; i < job.workers; i += 1) {
      work(job);
    }
  }

  // Everything one multipart upload's workers share.
  function partsJob(w, file, ticket, stored, key) {
    var have = {};
    var storedBytes = 0;
    stored.forEach(function (part) {
      have[part[0]] = true;
      storedBytes += part[1];
    });
    var waiting = [];
    for (var number = 1; number <= ticket.parts; number += 1) {
      if (!have[number]) {
        waiting.push(number);
      }
    }
    var job = {
      w: w,
      file: file,
      ticket: ticket,
      key: key,
      size: ticket.part_size,
      waiting: waiting, // part numbers not yet sent
      storedBytes: storedBytes,
      urls: {},
      loaded: {}, // bytes sent of each part in flight
      requests: {},
      workers: 0,
      problem: null,
      sentNothing: storedBytes === 0, // until a part's byte is acknowledged
      refused: false, // a part refused before any byte went: fall back
    };
    job.handle = { cancel: cancelParts.bind(null, job) };
    return job;
  }

  function cancelParts(job, told) {
    job.problem = "Upload cancelled.";
    Object.keys(job.requests).forEach(function (n) {
      job.requests[n].abort();
    });
    abandon(job.w, job.ticket, job.key);
    if (told !== false) {
      fail(job.w, job.problem);
    }
  }

  function partsProgress(job) {
    var sum = job.storedBytes;
    Object.keys(job.loaded).forEach(function (n) {
      sum += job.loaded[n];
    });
    showProgress(job.w, job.file, sum, job.file.size);
  }

  // One worker: send the next waiting part, then the next, until none is left or one fails.
  function work(job) {
    if (job.problem || job.w.running !== job.handle || !job.waiting.length) {
      workerDone(job);
      return;
    }
    var number = job.waiting.shift();
    partUrl(job, number)
      .then(function (url) {
        return putPart(job, number, url);
      })
      .then(
        function () {
          work(job);
        },
        function (error) {
          delete job.loaded[number];
          job.problem = job.problem || error.message;
          workerDone(job);
        }
      );
  }

  function workerDone(job) {
    var w = job.w;
    job.workers -= 1;
    if (job.workers > 0 || w.running !== job.handle) {
      return;
    }
    if (job.refused && job.sentNothing) {
      // Nothing of the file reached storage: drop the upload there and send it with the form.
      abandon(w, job.ticket, job.key);
      fallBack(w, job.file);
    } else if (job.problem) {
      // The parts stored so far stay: picking the same file again sends only the rest.
      fail(w, job.problem + " Pick the same file again to resume.");
    } else {
      remember(job.key, null);
      done(w, job.file, job.ticket);
    }
  }

  // The URL of part `number`, asked for with the next few waiting parts' URLs.
  function partUrl(job, number) {
    if (job.urls[number]) {
      return Promise.resolve(job.urls[number]);
    }
    var batch = [number].concat(
      job.waiting.filter(function (n) {
        return !job.urls[n];
      }).slice(0, URL_BATCH - 1)
    );
    var fields = { reference: job.ticket.reference, numbers: batch.join(",") };
    return ask(job.w, job.ticket.part_urls, fields).then(function (answer) {
      Object.keys(answer.urls).forEach(function (n) {
        job.urls[n] = answer.urls[n];
      });
      return job.urls[number];
    });
  }

  function putPart(job, number, url) {
    return new Promise(function (resolve, reject) {
      var start = (number - 1) * job.size;
      var end = Math.min(start + job.size, job.file.size);
      var request = new XMLHttpRequest();
      job.requests[number] = request;
      job.loaded[number] = 0;
      request.upload.addEventListener("progress", function (event) {
        if (event.loaded > 0) {
          job.sentNothing = false;
        }
        job.loaded[number] = event.loaded;
        partsProgress(job);
      });
      request.addEventListener("load", function () {
        delete job.requests[number];
        if (request.status >= 200 && request.status < 300) {
          delete job.loaded[number];
          job.storedBytes += end - start;
          job.w.box.dataset.partsSent = String(Number(job.w.box.dataset.partsSent) + 1);
          partsProgress(job);
          resolve();
        } else {
          reject(new Error("Part " + number + " was refused (" + request.status + ")."));
        }
      });
      request.addEventListener("error", function () {
        delete job.requests[number];
        job.refused = job.refused || job.sentNothing;
        reject(new Error("The connection was lost."));
      });
      request.addEventListener("abort", function () {
        delete job.requests[number];
        reject(new Error("Upload cancelled."));
      });
      request.open("PUT", url);
      // A slice is read from disk as it is sent: the page never holds the file.
      request.send(job.file.slice(start, end));
    });
  }

  // Wiring: pick, drop, cancel, and a form that waits for its upload ---------------------------

  function setUp(box) {
    var w = widget(box);
    w.input.addEventListener("change", function () {
      if (w.input.files.length) {
        upload(w, w.input.files[0]);
      }
    });
    box.addEventListener("dragover", function (event) {
      event.preventDefault();
    });
    box.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer.files.length) {
        upload(w, event.dataTransfer.files[0]);
      }
    });
    w.cancel.addEventListener("click", function () {
      if (w.running) {
        w.running.cancel();
      }
    });
    if (w.form) {
      w.form.addEventListener("submit", function (event) {
        if (w.running) {
          event.preventDefault();
          w.status.textContent = "Wait for the upload to finish, or cancel it, before saving.";
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
