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

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) {
      return input.value;
    }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

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

  function setUp(box) {
    var input = box.querySelector("input[type=file]");
    var token = box.querySelector("input[data-keyed-storage-token]");
    var reference = box.querySelector("input[data-keyed-storage-reference]");
    var progress = box.querySelector("progress");
    var cancel = box.querySelector("button.keyed-storage-cancel");
    var status = box.querySelector(".keyed-storage-status");
    var form = box.closest("form");
    var running = null; // the upload in progress: {cancel: function}
    var events = 0;
    var plain = false; // storage refused this page: files go with the form, through Django

    function show(state, text) {
      box.dataset.state = state;
      status.textContent = text;
      progress.hidden = state !== "uploading";
      cancel.hidden = state !== "uploading";
    }

    function fail(text) {
      running = null;
      reference.value = "";
      input.value = "";
      show("failed", text);
    }

    // Storage refused the browser before any byte was sent (no CORS rule for this site, most
    // likely): keep the file in the input, so the form sends it through Django as without
    // this script. Later files in this box go that way at once.
    function fallBack(file) {
      running = null;
      plain = true;
      reference.value = "";
      try {
        var files = new DataTransfer(); // a dropped file is not in the input yet
        files.items.add(file);
        input.files = files.files;
      } catch (error) {
        fail("This file cannot be uploaded from this page. Please pick it again.");
        return;
      }
      show("plain", file.name + " will be uploaded when you save.");
    }

    function done(file, ticket) {
      running = null;
      reference.value = ticket.reference;
      input.value = "";
      show("done", file.name + " is uploaded: save to keep it.");
    }

    function showProgress(file, loaded, total) {
      events += 1;
      box.dataset.progressEvents = String(events);
      progress.max = total;
      progress.value = loaded;
      status.textContent = Math.floor((100 * loaded) / total) + "% of " + file.name;
    }

    function ask(url, fields) {
      var body = new FormData();
      body.append("token", token.value);
      Object.keys(fields).forEach(function (name) {
        body.append(name, fields[name]);
      });
      return fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form) },
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

    function memoryKey(file) {
      return [MEMORY + window.location.pathname, token.name, file.name, file.size, file.lastModified].join(":");
    }

    function upload(file) {
      if (plain) {
        fallBack(file);
        return;
      }
      if (running) {
        var previous = running;
        running = null; // its end is not this upload's failure
        previous.cancel(false);
      }
      reference.value = "";
      events = 0;
      progress.max = file.size || 1;
      progress.value = 0;
      show("uploading", "Preparing " + file.name + "…");
      // Until the file is on its way, cancel stops what is being prepared: nothing is sent,
      // and a multipart upload begun on the server for it is dropped there.
      var attempt = { cancelled: false };
      running = {
        cancel: function (told) {
          attempt.cancelled = true;
          running = null;
          if (told !== false) {
            fail("Upload cancelled.");
          }
        },
      };
      var key = memoryKey(file);
      var saved = remembered(key);
      var resumed = saved
        ? ask(saved.uploaded_parts, { reference: saved.reference }).then(
            function (answer) {
              return { ticket: saved, stored: answer.parts };
            },
            function () {
              remember(key, null); // finished, cancelled or expired: start again
              return null;
            }
          )
        : Promise.resolve(null);
      resumed
        .then(function (found) {
          if (found) {
            return found;
          }
          return ask(box.dataset.ticketUrl, {
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
        })
        .then(function (found) {
          if (attempt.cancelled) {
            if (found.ticket.parts) {
              remember(key, null);
              ask(found.ticket.abort, { reference: found.ticket.reference }).catch(function () {});
            }
            return;
          }
          if (found.ticket.parts) {
            sendParts(file, found.ticket, found.stored, key);
          } else {
            send(file, found.ticket);
          }
        })
        .catch(function (error) {
          if (!attempt.cancelled) {
            fail(error.message);
          }
        });
    }

    function send(file, ticket) {
      var body = new FormData();
      Object.keys(ticket.fields).forEach(function (name) {
        body.append(name, ticket.fields[name]);
      });
      body.append("file", file); // last: S3 ignores fields after the file
      var request = new XMLHttpRequest();
      var mine = {
        cancel: function () {
          request.abort();
        },
      };
      running = mine;
      var sentAll = false;
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          sentAll = event.loaded >= event.total;
          showProgress(file, event.loaded, event.total);
        }
      });
      request.addEventListener("load", function () {
        if (running !== mine) {
          return;
        }
        if (request.status >= 200 && request.status < 300) {
          done(file, ticket);
        } else {
          fail("The upload was refused (" + request.status + "). Please try again.");
        }
      });
      request.addEventListener("error", function () {
        if (running !== mine) {
          return;
        }
        if (events === 0) {
          fallBack(file); // refused before a byte went: the preflight, or no way to storage
        } else if (sentAll) {
          // Every byte went, but the answer may not be read here (a storage that lets the
          // preflight through and not its answer). The server checks that the file arrived
          // whole when the form is saved, and says so if it did not.
          done(file, ticket);
        } else {
          fail("The upload failed. Please try again.");
        }
      });
      request.addEventListener("abort", function () {
        if (running === mine) {
          fail("Upload cancelled.");
        }
      });
      request.open("POST", ticket.url);
      request.send(body);
      show("uploading", "Uploading " + file.name + "…");
    }

    function sendParts(file, ticket, stored, key) {
      var size = ticket.part_size;
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
      var urls = {};
      var loaded = {}; // bytes sent of each part in flight
      var requests = {};
      var workers = 0;
      var problem = null;
      var sentNothing = storedBytes === 0; // until a part's byte is acknowledged
      var refused = false; // a part refused before any byte went: fall back
      var mine = {
        cancel: function (told) {
          problem = "Upload cancelled.";
          Object.keys(requests).forEach(function (n) {
            requests[n].abort();
          });
          remember(key, null);
          // The upload is dropped on the server too, so no part is left (nor billed).
          ask(ticket.abort, { reference: ticket.reference }).catch(function () {});
          if (told !== false) {
            fail(problem);
          }
        },
      };
      running = mine;
      box.dataset.partsSent = "0";

      function update() {
        var sum = storedBytes;
        Object.keys(loaded).forEach(function (n) {
          sum += loaded[n];
        });
        showProgress(file, sum, file.size);
      }

      function urlFor(number) {
        if (urls[number]) {
          return Promise.resolve(urls[number]);
        }
        var batch = [number].concat(
          waiting.filter(function (n) {
            return !urls[n];
          }).slice(0, URL_BATCH - 1)
        );
        return ask(ticket.part_urls, { reference: ticket.reference, numbers: batch.join(",") }).then(
          function (answer) {
            Object.keys(answer.urls).forEach(function (n) {
              urls[n] = answer.urls[n];
            });
            return urls[number];
          }
        );
      }

      function put(number, url) {
        return new Promise(function (resolve, reject) {
          var start = (number - 1) * size;
          var request = new XMLHttpRequest();
          requests[number] = request;
          loaded[number] = 0;
          request.upload.addEventListener("progress", function (event) {
            if (event.loaded > 0) {
              sentNothing = false;
            }
            loaded[number] = event.loaded;
            update();
          });
          request.addEventListener("load", function () {
            delete requests[number];
            if (request.status >= 200 && request.status < 300) {
              delete loaded[number];
              storedBytes += Math.min(size, file.size - start);
              box.dataset.partsSent = String(Number(box.dataset.partsSent) + 1);
              update();
              resolve();
            } else {
              reject(new Error("Part " + number + " was refused (" + request.status + ")."));
            }
          });
          request.addEventListener("error", function () {
            delete requests[number];
            refused = refused || sentNothing;
            reject(new Error("The connection was lost."));
          });
          request.addEventListener("abort", function () {
            delete requests[number];
            reject(new Error("Upload cancelled."));
          });
          request.open("PUT", url);
          // A slice is read from disk as it is sent: the page never holds the file.
          request.send(file.slice(start, Math.min(start + size, file.size)));
        });
      }

      function finished() {
        workers -= 1;
        if (workers > 0 || running !== mine) {
          return;
        }
        if (refused && sentNothing) {
          // Nothing of the file reached storage: drop the upload there and send it with the form.
          remember(key, null);
          ask(ticket.abort, { reference: ticket.reference }).catch(function () {});
          fallBack(file);
        } else if (problem) {
          // The parts stored so far stay: picking the same file again sends only the rest.
          fail(problem + " Pick the same file again to resume.");
        } else {
          remember(key, null);
          done(file, ticket);
        }
      }

      function work() {
        if (problem || running !== mine || !waiting.length) {
          finished();
          return;
        }
        var number = waiting.shift();
        urlFor(number)
          .then(function (url) {
            return put(number, url);
          })
          .then(work, function (error) {
            delete loaded[number];
            problem = problem || error.message;
            finished();
          });
      }

      show("uploading", "Uploading " + file.name + "…");
      update();
      workers = Math.max(1, Math.min(PARALLEL, waiting.length));
      for (var i = 0; i < workers; i += 1) {
        work();
      }
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
      if (running) {
        running.cancel();
      }
    });
    if (form) {
      form.addEventListener("submit", function (event) {
        if (running) {
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
