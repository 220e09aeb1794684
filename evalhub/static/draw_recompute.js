/* Recompute a witnessed draw in the browser from its published record (issue 14), without trusting the server:
 * sha256(canonical text) = candidate hash; sha256(secret) = commitment; seed = sha256(secret|hash|numbers…)
 * (a derived draw: sha256(parent seed|hash)); result = the first k eligible ids ranked by sha256("seed:id").
 * SHA-256 is written out here (FIPS 180-4) so it works on plain http too, where crypto.subtle is absent. */
(function () {
  "use strict";
  var K = [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2];

  function sha256(text) {
    var bytes = new TextEncoder().encode(text);
    var bitLength = bytes.length * 8;
    var padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    var view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
    view.setUint32(padded.length - 4, bitLength >>> 0);
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var w = new Array(64);
    for (var offset = 0; offset < padded.length; offset += 64) {
      for (var t = 0; t < 16; t++) w[t] = view.getUint32(offset + 4 * t);
      for (t = 16; t < 64; t++) {
        var x = w[t - 15], y = w[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var ch = (e & f) ^ (~e & g);
        var t1 = (k + S1 + ch + K[t] + w[t]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
    }
    return h.map(function (v) { return ("00000000" + (v >>> 0).toString(16)).slice(-8); }).join("");
  }

  function rank(seed, ids) {
    return ids.map(function (i) { return [sha256(seed + ":" + i), i]; })
      .sort(function (p, q) { return p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : p[1] - q[1]; })
      .map(function (p) { return p[1]; });
  }

  function recompute(record) {
    var lines = [];
    function check(label, ok, detail) { lines.push({label: label, ok: ok, detail: detail || ""}); return ok; }
    var hash, listed, k, excluded = {};
    if (record.canonical) {
      var published = JSON.parse(record.canonical);
      hash = sha256(record.canonical);
      check("候选名单哈希", hash === record.candidate_hash, hash);
      published.exclusions.forEach(function (e) { excluded[e[0]] = true; });
      listed = published.candidates.map(function (c) { return c[0]; });
      k = published.k;
      check("候选名单与记录", JSON.stringify(listed) === JSON.stringify(record.candidates) && k === record.k);
    } else {
      // A public page of a draw among people leaves out the canonical text (it holds the exclusion reasons):
      // the seed and the result are recomputed from the published hash, list and excluded ids.
      hash = record.candidate_hash;
      listed = record.candidates;
      k = record.k;
      record.excluded.forEach(function (i) { excluded[i] = true; });
    }
    var seed;
    if (record.parent_seed) {
      seed = sha256(record.parent_seed + "|" + hash);
    } else {
      check("秘密值与承诺值", sha256(record.secret) === record.commitment, sha256(record.secret));
      seed = sha256([record.secret, hash].concat(record.numbers).join("|"));
    }
    check("种子", seed === record.seed, seed);
    var eligible = listed.filter(function (i) { return !excluded[i]; });
    var result = rank(seed, eligible).slice(0, k);
    check("抽取结果", JSON.stringify(result) === JSON.stringify(record.result), result.join(", "));
    return lines;
  }

  window.evalhubDraws = {sha256: sha256, rank: rank, recompute: recompute};

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("recompute");
    var source = document.getElementById("draw-record");
    if (!button || !source) return;
    button.addEventListener("click", function () {
      var out = document.getElementById("recompute-result");
      out.textContent = "";
      var lines;
      try { lines = recompute(JSON.parse(source.textContent)); } catch (err) { lines = [{label: "复算出错", ok: false, detail: String(err)}]; }
      lines.forEach(function (line) {
        var li = document.createElement("li");
        li.className = line.ok ? "text-success" : "text-danger";
        li.textContent = (line.ok ? "✓ " : "✗ ") + line.label + (line.ok ? "一致" : "不一致") + (line.detail ? "：" + line.detail : "");
        out.appendChild(li);
      });
      var all = lines.every(function (l) { return l.ok; });
      var summary = document.createElement("li");
      summary.className = "fw-bold " + (all ? "text-success" : "text-danger");
      summary.setAttribute("data-testid", "recompute-verdict");
      summary.textContent = all ? "浏览器复算一致" : "浏览器复算不一致";
      out.appendChild(summary);
    });
  });
})();
