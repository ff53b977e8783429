(function () {
  "use strict";
  var root = document.getElementById("checkout");
  if (!root) { return; }
  var $ = function (id) { return document.getElementById(id); };
  var data = root.dataset;
  var pollMs = parseInt(data.pollMs, 10) || 2000;
  // The server's clock decides expiry; measure ours against it once.
  var skew = Date.parse(data.serverNow) - Date.now();
  var expiresAt = Date.parse(data.expiresAt);
  var state = { status: data.status, received: null };
  var redirecting = false;

  // Amounts are decimal strings with seven decimals ("12.5000000"); do the
  // arithmetic in stroops, exactly.
  function stroops(s) {
    var parts = String(s).split(".");
    var frac = ((parts[1] || "") + "0000000").slice(0, 7);
    return BigInt(parts[0] + frac);
  }
  function display(n) {
    var neg = n < 0n;
    if (neg) { n = -n; }
    var s = n.toString().padStart(8, "0");
    var whole = s.slice(0, -7), frac = s.slice(-7).replace(/0+$/, "");
    while (frac.length < 2) { frac += "0"; }
    return (neg ? "-" : "") + whole + "." + frac;
  }
  function assetCode(asset) { return String(asset).split(":")[0]; }

  function setText(id, text) { var el = $(id); if (el) { el.textContent = text; } }
  function show(id, on) { var el = $(id); if (el) { el.hidden = !on; } }

  function statusText(s) {
    switch (s.status) {
      case "complete": return "Paid. Thank you!";
      case "expired": return "This checkout has expired. Please don't send a payment.";
      case "canceled": return "This checkout was canceled. Please don't send a payment.";
    }
    if (s.payment_status === "partially_paid") { return "Partially paid. Waiting for the rest."; }
    return "Waiting for your payment.";
  }

  function safeURL(u) {
    if (!u) { return ""; } // new URL("", here) would be this very page
    try {
      var p = new URL(u, window.location.href);
      return (p.protocol === "https:" || p.protocol === "http:") ? p.href : "";
    } catch (e) { return ""; }
  }

  function render(s) {
    var amount = stroops(s.amount), received = stroops(s.amount_received);
    root.dataset.status = s.status;
    setText("status-text", statusText(s));
    var partial = s.status === "open" && s.payment_status === "partially_paid";
    show("progress", partial);
    if (partial) {
      var bar = $("progress-bar");
      bar.max = Number(amount);
      bar.value = Number(received < amount ? received : amount);
      setText("received", display(received));
      setText("remaining", display(amount - received));
    }
    if (state.received !== null && received !== state.received && s.status === "open") {
      show("qr-stale", true);
    }
    state.received = received;
    state.status = s.status;
    show("pay", s.status === "open");
    show("countdown-line", s.status === "open");
    if (s.status === "complete") { goToSuccess(s.success_url); }
  }

  // goToSuccess shows the way back to the shop and, after a moment to see
  // that the payment went through, takes it.
  function goToSuccess(successURL) {
    var url = safeURL(successURL);
    if (!url || redirecting) { return; }
    redirecting = true;
    $("success-link").href = url;
    show("continue", true);
    setText("status-text", "Paid. Thank you! Taking you back to the shop…");
    window.setTimeout(function () { window.location.assign(url); }, 1500);
  }

  function tick() {
    if (state.status !== "open") { return; }
    var left = Math.max(0, Math.floor((expiresAt - (Date.now() + skew)) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), sec = left % 60;
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    setText("countdown", (h > 0 ? h + ":" + pad(m) : String(m)) + ":" + pad(sec));
    if (left === 0) {
      setText("countdown-line", "Time is up. Waiting for the network to confirm…");
    }
  }

  var timer = null;
  function schedule(ms) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, ms);
  }
  function poll() {
    fetch(data.statusUrl, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (s) {
        render(s);
        if (s.status === "open") { schedule(pollMs); }
      })
      .catch(function () { schedule(pollMs * 3); });
  }

  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var text = $(btn.dataset.copy).textContent.trim();
      var done = function () {
        btn.textContent = "Copied";
        window.setTimeout(function () { btn.textContent = "Copy"; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { btn.textContent = "Select and copy"; });
      } else {
        var range = document.createRange();
        range.selectNodeContents($(btn.dataset.copy));
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        btn.textContent = "Press Ctrl+C";
      }
    });
  });

  var payBtn = $("sandbox-pay");
  if (payBtn && data.sandboxPayUrl) {
    payBtn.addEventListener("click", function () {
      payBtn.disabled = true;
      payBtn.textContent = "Paying…";
      setText("sandbox-result", "");
      fetch(data.sandboxPayUrl, { method: "POST", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (res) {
          if (!res.ok) { throw new Error(res.body.error ? res.body.error.message : "payment failed"); }
          setText("sandbox-result", "Sent " + display(stroops(res.body.amount)) + " in transaction " + res.body.transaction_hash.slice(0, 12) + "…");
          payBtn.textContent = "Sent";
          poll();
        })
        .catch(function (e) {
          setText("sandbox-result", "Sandbox payment failed: " + e.message);
          payBtn.disabled = false;
          payBtn.textContent = "Pay with sandbox wallet";
        });
    });
  }

  if (state.status === "open") {
    tick();
    window.setInterval(tick, 1000);
    schedule(pollMs);
  } else if (state.status === "complete" && data.successUrl) {
    goToSuccess(data.successUrl);
  }
})();
