/*
 * preflog-feedback.js: send end users' judgements from a web page to the preflog ingestion API.
 * No dependencies; any browser with fetch. Served by `preflog serve` at /preflog-feedback.js.
 *
 *   <script src="https://preflog.example.com/preflog-feedback.js"></script>
 *   <script>
 *     const feedback = new PreflogFeedback({
 *       endpoint: "https://preflog.example.com",   // the API's address
 *       key: "pfk_...",                             // a PUBLIC key: preflog keys create --public --scope feedback --origin https://chat.example.com
 *       userId: "u-1042",                           // optional: who judges (pseudonymised when privacy is on)
 *     });
 *     feedback.thumbs(requestId, 1, true);          // RATING: candidate 1, thumbs up
 *     feedback.choose(requestId, 1, 0);             // PAIRWISE: 1 preferred over 0
 *     feedback.rank(requestId, [2, 0, 1]);          // RANKING: best first
 *     feedback.bind(document);                      // or: wire buttons by data-preflog-* attributes
 *   </script>
 *
 * Buttons for bind(): data-preflog-request="<request_id>" and either data-preflog-thumbs="up|down" with
 * data-preflog-index="<candidate>", or data-preflog-choose="<chosen>" with data-preflog-reject="<rejected>".
 *
 * Every call returns a Promise of the API's answer ({accepted, ids}); it rejects with an Error whose
 * `status` and `body` are the API's. A 429 or 503 is retried (after Retry-After, up to `retries` times)
 * with the same feedback_id, which the pipeline stores once, so a retry never doubles a judgement.
 * A public key can only send feedback, for its own tenant, from the origins it lists.
 */
(function (root) {
  "use strict";

  function uuid4() {
    if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID();
    var b = new Uint8Array(16);
    root.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function PreflogFeedback(options) {
    if (!options || !options.endpoint || !options.key) throw new Error("PreflogFeedback needs {endpoint, key}");
    this.endpoint = String(options.endpoint).replace(/\/+$/, "");
    this.key = options.key;
    this.userId = options.userId || null;
    this.retries = options.retries === undefined ? 3 : options.retries;
  }

  PreflogFeedback.prototype.send = function (event) {
    var body = Object.assign({ feedback_id: uuid4(), event_time: new Date().toISOString() }, event);
    if (!body.source) body.source = { type: "END_USER", id: this.userId };
    var self = this;
    var attempt = function (left) {
      return fetch(self.endpoint + "/v1/feedback", {
        method: "POST",
        headers: { "Authorization": "Bearer " + self.key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        keepalive: true,
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (answer) {
          if (response.status === 202) return answer;
          if ((response.status === 429 || response.status === 503) && left > 0) {
            var wait = 1000 * (parseInt(response.headers.get("Retry-After"), 10) || 1);
            return sleep(wait).then(function () { return attempt(left - 1); });
          }
          var error = new Error("preflog: " + response.status + " " + (answer.error || ""));
          error.status = response.status;
          error.body = answer;
          throw error;
        });
      });
    };
    return attempt(this.retries);
  };

  PreflogFeedback.prototype.thumbs = function (requestId, index, up, extra) {
    var rating = { index: Number(index), label: Boolean(up), scale: "thumbs" };
    return this.send(Object.assign({ request_id: requestId, kind: "RATING", rating: rating }, extra));
  };

  PreflogFeedback.prototype.choose = function (requestId, chosen, rejected, extra) {
    var pairwise = { chosen: Number(chosen), rejected: Number(rejected) };
    return this.send(Object.assign({ request_id: requestId, kind: "PAIRWISE", pairwise: pairwise }, extra));
  };

  PreflogFeedback.prototype.rank = function (requestId, bestFirst, extra) {
    var ranking = bestFirst.map(function (index, i) { return { index: Number(index), rank: i + 1 }; });
    return this.send(Object.assign({ request_id: requestId, kind: "RANKING", ranking: ranking }, extra));
  };

  PreflogFeedback.prototype.bind = function (scope) {
    var self = this;
    (scope || root.document).addEventListener("click", function (e) {
      var el = e.target && e.target.closest ? e.target.closest("[data-preflog-request]") : null;
      if (!el) return;
      var rid = el.getAttribute("data-preflog-request");
      var sent;
      if (el.hasAttribute("data-preflog-thumbs")) {
        sent = self.thumbs(rid, el.getAttribute("data-preflog-index") || 0, el.getAttribute("data-preflog-thumbs") === "up");
      } else if (el.hasAttribute("data-preflog-choose")) {
        sent = self.choose(rid, el.getAttribute("data-preflog-choose"), el.getAttribute("data-preflog-reject"));
      } else {
        return;
      }
      el.setAttribute("data-preflog-state", "sending");
      sent.then(
        function () { el.setAttribute("data-preflog-state", "sent"); },
        function (error) { el.setAttribute("data-preflog-state", "failed " + (error.status || "network")); }
      );
    });
  };

  root.PreflogFeedback = PreflogFeedback;
})(typeof window !== "undefined" ? window : globalThis);
