/* convoyrisk briefing map: draws the layers and panels from the JSON that
 * convoyrisk.maps writes into the page. Data never becomes markup: every
 * value from the data goes into the page through textContent or an
 * attribute, never through innerHTML. The panels' HTML is built and escaped
 * in Python.
 *
 * Drawing order, bottom to top: base tiles, incident heat (never takes the
 * pointer), uncertainty circles, route bands, place dots, road casings, roads
 * (lowest class first, so severe is on top and widest), route ranks and
 * labels, incident rings (hollow: the road colour shows through; where they crowd,
 * one thin ring around them and their count beside the road). */
function convoyriskBriefing(map, D) {
  "use strict";
  var S = Math.pow(10, D.decimals);
  var HEAT = { radius: 30, blur: 25, minOpacity: 0.12, maxZoom: 9,
               gradient: { 0.3: "#e4ded2", 0.6: "#c9c0ae", 0.85: "#a59a86", 1.0: "#7d725f" } };
  var narrow = window.innerWidth <= 600;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function line(parent, label, value) {
    var row = el("div", "cr-row");
    row.appendChild(el("b", null, label + " "));
    row.appendChild(el("span", null, value));
    parent.appendChild(row);
    return row;
  }
  /* Parts of delta-encoded integer coordinates [x0, y0, dx1, dy1, ...] to lat/lon. */
  function decode(parts, scale) {
    var k = scale || S;
    return parts.map(function (a) {
      var out = [], x = 0, y = 0;
      for (var i = 0; i < a.length; i += 2) {
        x += a[i]; y += a[i + 1];
        out.push([y / k, x / k]);
      }
      return out;
    });
  }
  function fmt(v) { return v === null ? "n/a" : String(v); }
  /* A rate (incidents per km per 30 days) as the chance of one for 100 km driven in a day. */
  function words(rate) {
    var p = 1 - Math.exp(-Math.max(rate, 0) * 100 / 30);
    var share = p < 0.001 ? "under 0.1%" : p < 0.1 ? "about " + Number((100 * p).toPrecision(2)) + "%"
      : "about " + Math.round(100 * p) + "%";
    return share + " chance of an incident per 100 km driven in a day";
  }

  var routesAbove = D.roads.canvas;  /* dense networks: route bands over the roads */
  [["crContext", 250], ["crHeat", 300], ["crUncertainty", 350], ["crRoutes", routesAbove ? 430 : 380],
   ["crPlaceDots", 405], ["crCasing", 415], ["crRoads", 420], ["crLabels", 460]].forEach(
    function (p) { map.createPane(p[0]).style.zIndex = p[1]; }
  );
  ["crContext", "crHeat", "crUncertainty", "crLabels"].forEach(function (p) {
    map.getPane(p).style.pointerEvents = "none";
  });
  map.getContainer().style.background = D.background;
  /* with no tile layer Leaflet has no zoom limit, and marker clusters need one */
  if (map.options.maxZoom === undefined) { map.setMaxZoom(18); }
  L.control.scale({ imperial: false, maxWidth: 160, position: "bottomright" }).addTo(map);
  /* vector layers out of the Tab order: the keyboard reaches the controls and the
     worst-segments table instead of 1,600 road segments */
  map.on("layeradd", function (e) {
    if (e.layer._path) { e.layer._path.setAttribute("tabindex", "-1"); e.layer._path.setAttribute("focusable", "false"); }
  });

  var overlays = [], routeLayers = [], bases = {};

  /* Base tiles from the user's MBTiles file, embedded in the page. */
  if (D.basemap) {
    var B = D.basemap;
    var Embedded = L.GridLayer.extend({
      createTile: function (c) {
        var img = document.createElement("img");
        img.alt = "";
        var data = B.tiles[c.z + "/" + c.x + "/" + c.y];
        if (data) { img.src = "data:image/" + B.format + ";base64," + data; }
        img.className = "cr-mbtiles-tile";
        return img;
      }
    });
    var baseLayer = new Embedded({ minNativeZoom: B.minzoom, maxNativeZoom: B.maxzoom,
                                   maxZoom: 18, className: "cr-mbtiles" });
    bases[B.name + " (embedded)"] = baseLayer;
    bases["No background"] = L.layerGroup();
    baseLayer.addTo(map);
  }

  /* Context: Natural Earth region boundaries, rivers, country borders, coasts, and the
     names of countries and regions (offline, under everything, never taking the pointer
     or a Tab stop). */
  var context = null;
  if (D.context) {
    var k3 = 1000, C = D.context;
    context = L.layerGroup();
    var ctxRenderer = L.svg({ pane: "crContext" });
    var ctxLines = function (parts, style) {
      parts.forEach(function (p) {
        style.pane = "crContext"; style.renderer = ctxRenderer; style.interactive = false;
        context.addLayer(L.polyline(decode(p, k3), style));
      });
    };
    var ctxNames = function (names, cls, anchor, group) {
      return names.map(function (n) {
        var mark = L.marker([n[1], n[2]], { interactive: false, keyboard: false,
          pane: "crContext", icon: L.divIcon({ className: cls + "-icon",
            html: el("div", cls, n[0]), iconSize: null, iconAnchor: anchor }) });
        group.addLayer(mark);
        return mark;
      });
    };
    ctxLines(C.region_lines || [], { color: "#b9ad95", weight: 1, dashArray: "1 4",
      className: "cr-region-line" });
    ctxLines(C.rivers || [], { color: "#3f7fbf", weight: 2, opacity: 0.85,
      className: "cr-river" });
    ctxLines(C.coasts, { color: "#b8ae9c", weight: 1, className: "cr-coast" });
    ctxLines(C.borders, { color: "#8a8a8a", weight: 1.2, dashArray: "6 4",
      className: "cr-border" });
    /* region names from the zoom Natural Earth labels them at, less one (Mali's regions
       from 5.6, Burkina Faso's 45 provinces from 8): a country-wide map is not covered
       in names */
    var regionNames = L.layerGroup();
    var regionMarks = ctxNames(C.regions || [], "cr-region", [20, 6], regionNames);
    var showRegions = function () {
      var z = map.getZoom();
      regionMarks.forEach(function (mark, i) {
        var on = z >= C.regions[i][3] - 1;
        if (on && !regionNames.hasLayer(mark)) { regionNames.addLayer(mark); }
        if (!on && regionNames.hasLayer(mark)) { regionNames.removeLayer(mark); }
      });
    };
    context.addLayer(regionNames);
    ctxNames(C.names, "cr-country", [30, 8], context);
    map.on("zoomend", showRegions);
    map.whenReady(showRegions);
    context.addTo(map);
    overlays.push(["Borders, rivers, regions (Natural Earth)", context, true]);
  }

  /* Routes: wide translucent bands, best route widest, with the rank drawn along. */
  var bands = [];
  D.routes.forEach(function (r) {
    var band = L.polyline(decode(r.parts), {
      pane: "crRoutes", color: r.colour, weight: routesAbove ? 8 : r.weight,
      opacity: routesAbove ? 0.6 : 0.5, lineCap: "round", lineJoin: "round",
      className: "convoyrisk-route"
    });
    band.bindPopup(function () {
      var box = el("div", "cr-popup");
      box.appendChild(el("b", null, r.label));
      r.lines.forEach(function (kv) { line(box, kv[0], kv[1]); });
      return box;
    }, { minWidth: 240, maxWidth: 340, autoPanPaddingTopLeft: [narrow ? 10 : 470, 10] });
    var group = L.featureGroup([band]);
    r.marks.forEach(function (p) {
      var badge = el("div", "cr-rank", r.rank);
      badge.style.background = r.colour;
      group.addLayer(L.marker(p, {
        icon: L.divIcon({ className: "cr-rank-icon", html: badge, iconSize: [22, 22], iconAnchor: [11, 11] }),
        interactive: false, keyboard: false, pane: "crLabels"
      }));
    });
    routeLayers.push([r.label, group, r.show]);
    bands.push(band);
  });

  /* Canvas map tiles drawn by `draw(job)` between frames, up to TILE_BUDGET_MS of drawing
     a frame (the tiles nearest the centre first: Leaflet asks for them first). */
  var TILE_BUDGET_MS = 12, tileQueue = [], tileAsked = false;
  function runTiles() {
    tileAsked = false;
    var t0 = performance.now();
    while (tileQueue.length && performance.now() - t0 < TILE_BUDGET_MS) {
      var job = tileQueue.shift();
      if (job.tile.parentNode) { job.draw(job); }
      job.done(null, job.tile);
    }
    if (tileQueue.length) { tileAsked = true; requestAnimationFrame(runTiles); }
  }
  function flushTiles() {
    while (tileQueue.length) {
      var job = tileQueue.shift();
      if (job.tile.parentNode) { job.draw(job); }
      job.done(null, job.tile);
    }
  }
  function canvasTiles(draw, pane, className) {
    var Tiles = L.GridLayer.extend({
      createTile: function (coords, done) {
        var tile = document.createElement("canvas"), size = this.getTileSize().x;
        var ratio = window.devicePixelRatio || 1;
        tile.width = size * ratio; tile.height = size * ratio;
        tileQueue.push({ tile: tile, coords: coords, done: done, ratio: ratio, size: size, draw: draw });
        if (!tileAsked) { tileAsked = true; requestAnimationFrame(runTiles); }
        return tile;
      }
    });
    return new Tiles({ pane: pane, updateWhenZooming: false, keepBuffer: 3, className: className });
  }
  function mercator(lat, lon) {  /* Web Mercator pixels at zoom 0 */
    var phi = Math.max(Math.min(lat, 85.0511), -85.0511) * Math.PI / 180;
    return [(lon + 180) / 360 * 256, (0.5 - Math.log(Math.tan(Math.PI / 4 + phi / 2)) / (2 * Math.PI)) * 256];
  }
  function incidentBox(r) {
    var box = el("div", "cr-popup");
    box.appendChild(el("b", null, r.type + " – " + r.date));
    line(box, "casualties", "killed " + fmt(r.killed) + ", injured " + fmt(r.injured));
    line(box, "where", r.location);
    line(box, "precision", r.precision);
    line(box, "source", r.source);
    if (r.notes) { line(box, "notes", r.notes); }
    line(box, "id", r.id);
    line(box, "used in the risk", r.used);
    return box;
  }

  /* A country map's incidents: rings drawn into map tiles (small below the detail zoom),
     their uncertainty circles likewise, a click opens the nearest one's popup. */
  function countryIncidents(rows, detailZoom) {
    var n = rows.length, X = new Float64Array(n), Y = new Float64Array(n);
    var on = new Uint8Array(n).fill(1), cellOf = {}, CELL = 256 / 1024;
    rows.forEach(function (r, i) {
      var p = mercator(r.lat, r.lon);
      X[i] = p[0]; Y[i] = p[1];
      var key = Math.floor(p[0] / CELL) + "," + Math.floor(p[1] / CELL);
      (cellOf[key] = cellOf[key] || []).push(i);
    });
    function each(x0, y0, x1, y1, fn) {
      var a = Math.floor(x0 / CELL), b = Math.floor(x1 / CELL);
      var c = Math.floor(y0 / CELL), d = Math.floor(y1 / CELL);
      if ((b - a + 1) * (d - c + 1) > 4 * Object.keys(cellOf).length) {
        for (var i = 0; i < n; i++) { if (X[i] >= x0 && X[i] <= x1 && Y[i] >= y0 && Y[i] <= y1) { fn(i); } }
        return;
      }
      for (var cx = a; cx <= b; cx++) {
        for (var cy = c; cy <= d; cy++) {
          (cellOf[cx + "," + cy] || []).forEach(function (i) {
            if (X[i] >= x0 && X[i] <= x1 && Y[i] >= y0 && Y[i] <= y1) { fn(i); }
          });
        }
      }
    }
    function ringRadius() { return 6; }
    var maxRadius = Math.max.apply(null, rows.map(function (r) { return r.radius; }).concat([0]));
    function drawRings(job) {
      var z = job.coords.z, s = Math.pow(2, z), size = job.size, rr = ringRadius(z);
      if (z < detailZoom) { return; }  /* below it, the heat shows where they are */
      var ox = job.coords.x * size, oy = job.coords.y * size, pad = (rr + 12) / s;
      var used = [], unused = [];
      each(ox / s - pad, oy / s - pad, (ox + size) / s + pad, (oy + size) / s + pad, function (i) {
        if (on[i]) { (rows[i].used === "used" ? used : unused).push(i); }
      });
      var ctx = job.tile.getContext("2d");
      ctx.setTransform(job.ratio, 0, 0, job.ratio, 0, 0);
      function path(list) {
        ctx.beginPath();
        list.forEach(function (i) {
          var x = X[i] * s - ox + rows[i].dx, y = Y[i] * s - oy + rows[i].dy;
          ctx.moveTo(x + rr, y); ctx.arc(x, y, rr, 0, 2 * Math.PI);
        });
      }
      ctx.setLineDash([]);
      path(used);
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 4.5; ctx.stroke();
      ctx.strokeStyle = D.incidentColour; ctx.lineWidth = 2.5; ctx.stroke();
      path(unused);
      ctx.setLineDash([3, 2]); ctx.strokeStyle = "#666"; ctx.lineWidth = 2; ctx.stroke();
    }
    function drawCircles(job) {
      var z = job.coords.z, s = Math.pow(2, z), size = job.size;
      var ox = job.coords.x * size, oy = job.coords.y * size;
      var mpp = 40075016.686 / (256 * s);  /* metres a pixel at the equator */
      var pad = maxRadius / mpp / s * 1.2 + 2 / s, seen = {};
      var ctx = job.tile.getContext("2d");
      ctx.setTransform(job.ratio, 0, 0, job.ratio, 0, 0);
      ctx.beginPath();
      each(ox / s - pad, oy / s - pad, (ox + size) / s + pad, (oy + size) / s + pad, function (i) {
        var r = rows[i], key = r.lat + "," + r.lon + "," + r.radius;
        if (!on[i] || !(r.radius > 0) || seen[key]) { return; }
        seen[key] = true;
        var x = X[i] * s - ox, y = Y[i] * s - oy;
        var rad = r.radius / (mpp * Math.cos(r.lat * Math.PI / 180));
        ctx.moveTo(x + rad, y); ctx.arc(x, y, rad, 0, 2 * Math.PI);
      });
      ctx.fillStyle = D.incidentColour; ctx.globalAlpha = 0.04; ctx.fill(); ctx.globalAlpha = 1;
      ctx.setLineDash([5, 5]); ctx.strokeStyle = D.incidentColour; ctx.lineWidth = 1; ctx.stroke();
    }
    /* the heat, as folium's L.heatLayer draws it (radius 30, blur 25, points summed in cells
       of half the radius, the fullest cell of the zoom darkest), a tile at a time; cells are
       aligned on the world's pixels, so tiles meet without a seam */
    var heatMax = {}, heatLook = null;
    function fullest(z) {
      if (heatMax[z] === undefined) {
        var s = Math.pow(2, z), cell = (HEAT.radius + HEAT.blur) / 2, sums = new Map(), top = 1;
        for (var i = 0; i < n; i++) {
          if (!on[i]) { continue; }
          var key = Math.floor(X[i] * s / cell) * 1e8 + Math.floor(Y[i] * s / cell);
          var v = (sums.get(key) || 0) + 1;
          sums.set(key, v);
          if (v > top) { top = v; }
        }
        heatMax[z] = top;
      }
      return heatMax[z];
    }
    function drawHeat(job) {
      var z = job.coords.z, s = Math.pow(2, z), size = job.size, r = HEAT.radius + HEAT.blur;
      var ox = job.coords.x * size, oy = job.coords.y * size, cell = r / 2, grid = {};
      each((ox - r) / s, (oy - r) / s, (ox + size + r) / s, (oy + size + r) / s, function (i) {
        if (!on[i]) { return; }
        var gx = X[i] * s, gy = Y[i] * s, key = Math.floor(gx / cell) + "," + Math.floor(gy / cell);
        var c = grid[key];
        if (!c) { grid[key] = [gx, gy, 1]; return; }
        c[0] = (c[0] * c[2] + gx) / (c[2] + 1); c[1] = (c[1] * c[2] + gy) / (c[2] + 1); c[2] += 1;
      });
      var data = Object.keys(grid).map(function (key) {
        var c = grid[key];
        return [Math.round((c[0] - ox) * job.ratio), Math.round((c[1] - oy) * job.ratio), c[2]];
      });
      if (!data.length) { return; }
      job.tile.getContext("2d", { willReadFrequently: true });
      var heat = window.simpleheat(job.tile);
      if (!heatLook || heatLook.ratio !== job.ratio) {
        var made = window.simpleheat(document.createElement("canvas"))
          .radius(HEAT.radius * job.ratio, HEAT.blur * job.ratio).gradient(HEAT.gradient);
        heatLook = { ratio: job.ratio, circle: made._circle, r: made._r, grad: made._grad };
      }
      /* the blurred circle and the gradient, made once (simpleheat remakes them on each call) */
      heat._circle = heatLook.circle; heat._r = heatLook.r; heat._grad = heatLook.grad;
      heat.data(data).max(fullest(z)).draw(HEAT.minOpacity);
    }
    var heatTiles = window.simpleheat ? canvasTiles(drawHeat, "crHeat", "convoyrisk-heat-tiles") : null;
    var rings = canvasTiles(drawRings, "markerPane", "convoyrisk-incident-tiles");
    var circles = canvasTiles(drawCircles, "crUncertainty", "convoyrisk-uncertainty-tiles");
    var group = L.layerGroup([rings]);
    map.on("click", function (e) {
      if (!map.hasLayer(rings) || map.getZoom() < detailZoom) { return; }
      var z = map.getZoom(), s = Math.pow(2, z), p = map.options.crs.latLngToPoint(e.latlng, z);
      var reach = ringRadius(z) + 4, best = -1, bd = Infinity;
      each((p.x - reach - 10) / s, (p.y - reach - 10) / s, (p.x + reach + 10) / s, (p.y + reach + 10) / s, function (i) {
        if (!on[i]) { return; }
        var dx = X[i] * s + rows[i].dx - p.x, dy = Y[i] * s + rows[i].dy - p.y;
        var d = dx * dx + dy * dy;
        if (d <= reach * reach && d < bd) { bd = d; best = i; }
      });
      if (best >= 0) {
        L.popup({ minWidth: 260, maxWidth: 340, autoPanPaddingTopLeft: [narrow ? 10 : 470, 10] })
          .setLatLng([rows[best].lat, rows[best].lon]).setContent(incidentBox(rows[best])).openOn(map);
      }
    });
    return {
      layer: group, circles: circles, rings: rings, heat: heatTiles,
      /* the time slider: incidents from day t - w (excluded) to day t */
      show: function (t, w) {
        var count = 0, pts = [];
        rows.forEach(function (r, i) {
          on[i] = r.day <= t && r.day > t - w ? 1 : 0;
          if (on[i]) { count += 1; pts.push([r.lat, r.lon, 1]); }
        });
        heatMax = {};
        rings.redraw(); circles.redraw();
        if (heatTiles) { heatTiles.redraw(); }
        return { count: count, pts: pts };
      }
    };
  }

  /* A country map's roads (convoyrisk.maps, country=True): features packed as text
     (five-bit varints, characters from "?"), indexed in cells, and drawn into map tiles
     a few at a time between frames, so a pan or a zoom costs what is in view. Below
     R.detailZoom only the overview (the first R.overview features: major roads and
     every elevated, high or severe run) is drawn. Tooltips come from a hit test on the
     same index. */
  function varints(t) {
    var out = new Float64Array(t.length), n = 0, v = 0, sh = 1;
    for (var i = 0; i < t.length; i++) {
      var c = t.charCodeAt(i) - 63;
      v += (c & 31) * sh;
      if (c < 32) { out[n++] = v; v = 0; sh = 1; } else { sh *= 32; }
    }
    return out.subarray(0, n);
  }
  function unzig(z) { return z % 2 ? -(z + 1) / 2 : z / 2; }
  function sums(t) {  /* zigzag differences back to values */
    var a = varints(t), x = 0;
    for (var i = 0; i < a.length; i++) { x += unzig(a[i]); a[i] = x; }
    return a;
  }
  function countryRoads(map, D, R) {
    var n = R.size, digits = R.digits, lo = Math.pow(10, digits - 1);
    var cls = new Uint8Array(n);
    for (var i = 0; i < n; i++) { cls[i] = R.cls.charCodeAt(i) - 48; }
    var ids = sums(R.id), rate = sums(R.rate), low = sums(R.low), high = sums(R.high);
    var nInc = R.n ? sums(R.n) : null, count = varints(R.count), road = varints(R.road);
    function sig(code) {
      if (!code) { return 0; }
      code -= 1;
      var e = Math.floor(code / (9 * lo)) - 12, m = code % (9 * lo) + lo;
      return Number((m * Math.pow(10, e - digits + 1)).toPrecision(digits));
    }
    /* geometry: vertices in Web Mercator pixels at zoom 0 */
    var g = R.geom, cap = g.length + 1;
    var X = new Float64Array(cap), Y = new Float64Array(cap), brk = new Uint8Array(cap);
    var start = new Int32Array(n + 1), f = 0, nv = 0, acc = 0, sh = 1, half = false;
    var x = 0, y = 0, newPart = false, k = Math.pow(10, D.decimals);
    for (var j = 0; j < g.length; j++) {
      var c = g.charCodeAt(j);
      if (c === 44) { f += 1; start[f] = nv; newPart = false; continue; }
      if (c === 59) {  /* a new run from the vertex before */
        f += 1; start[f] = nv; newPart = false;
        X[nv] = X[nv - 1]; Y[nv] = Y[nv - 1]; brk[nv] = 0; nv += 1;
        continue;
      }
      if (c === 32) { newPart = true; continue; }
      c -= 63;
      acc += (c & 31) * sh;
      if (c >= 32) { sh *= 32; continue; }
      var d = unzig(acc); acc = 0; sh = 1;
      if (!half) { x += d; half = true; continue; }
      y += d; half = false;
      var lat = Math.max(Math.min(y / k, 85.0511), -85.0511) * Math.PI / 180;
      X[nv] = (x / k + 180) / 360 * 256;
      Y[nv] = (0.5 - Math.log(Math.tan(Math.PI / 4 + lat / 2)) / (2 * Math.PI)) * 256;
      brk[nv] = newPart ? 1 : 0; newPart = false; nv += 1;
    }
    for (f += 1; f <= n; f++) { start[f] = nv; }
    /* boxes of features and of cells */
    var box = new Float64Array(4 * n);
    for (i = 0; i < n; i++) {
      var a = Infinity, b = Infinity, cc = -Infinity, dd = -Infinity;
      for (var v = start[i]; v < start[i + 1]; v++) {
        if (X[v] < a) { a = X[v]; } if (X[v] > cc) { cc = X[v]; }
        if (Y[v] < b) { b = Y[v]; } if (Y[v] > dd) { dd = Y[v]; }
      }
      box[4 * i] = a; box[4 * i + 1] = b; box[4 * i + 2] = cc; box[4 * i + 3] = dd;
    }
    var cells = R.cells.map(function (e) {
      var q = [Infinity, Infinity, -Infinity, -Infinity];
      for (var i = e[2]; i < e[2] + e[3]; i++) {
        q[0] = Math.min(q[0], box[4 * i]); q[1] = Math.min(q[1], box[4 * i + 1]);
        q[2] = Math.max(q[2], box[4 * i + 2]); q[3] = Math.max(q[3], box[4 * i + 3]);
      }
      return { first: e[2], end: e[2] + e[3], box: q, detail: e[2] >= R.overview };
    });
    /* contributors (named on elevated and worse runs) */
    var calm = {}, topAt = new Int32Array(n).fill(-1), tops = varints(R.top), t = 0;
    R.calm.forEach(function (c) { calm[c] = true; });
    for (i = 0; i < n; i++) {
      if (calm[cls[i]]) { continue; }
      topAt[i] = t; t += 1 + 2 * tops[t];
    }
    /* the features of cells that meet a box (zoom-0 pixels), at a zoom */
    function each(z, x0, y0, x1, y1, fn) {
      var detail = z >= R.detailZoom;
      for (var ci = 0; ci < cells.length; ci++) {
        var e = cells[ci], q = e.box;
        if ((e.detail && !detail) || q[0] > x1 || q[2] < x0 || q[1] > y1 || q[3] < y0) { continue; }
        for (var i = e.first; i < e.end; i++) {
          if (box[4 * i] > x1 || box[4 * i + 2] < x0 || box[4 * i + 1] > y1 || box[4 * i + 3] < y0) { continue; }
          fn(i);
        }
      }
    }
    var maxWeight = Math.max.apply(null, D.classes.map(function (c) { return c.weight + 3; }));
    function trace(ctx, list, s, ox, oy) {
      ctx.beginPath();
      for (var q = 0; q < list.length; q++) {
        var i = list[q], px = 0, py = 0;
        for (var v = start[i]; v < start[i + 1]; v++) {
          var sx = X[v] * s - ox, sy = Y[v] * s - oy;
          if (v === start[i] || brk[v]) { ctx.moveTo(sx, sy); px = sx; py = sy; continue; }
          /* vertices within half a pixel of the last drawn one add nothing */
          if (Math.abs(sx - px) < 0.5 && Math.abs(sy - py) < 0.5 && v + 1 < start[i + 1] && !brk[v + 1]) { continue; }
          ctx.lineTo(sx, sy); px = sx; py = sy;
        }
      }
    }
    var drawn = { tiles: 0, features: 0, ms: 0, maxMs: 0 };
    function draw(job) {
      var t0 = performance.now();
      var cv = job.tile, r = job.ratio, z = job.coords.z, s = Math.pow(2, z), size = job.size;
      var ox = job.coords.x * size, oy = job.coords.y * size, pad = maxWeight / s;
      var byClass = D.classes.map(function () { return []; });
      each(z, ox / s - pad, oy / s - pad, (ox + size) / s + pad, (oy + size) / s + pad,
           function (i) { byClass[cls[i]].push(i); });
      var ctx = cv.getContext("2d");
      ctx.setTransform(r, 0, 0, r, 0, 0);
      ctx.lineJoin = "round";
      D.classes.forEach(function (c, ci) {
        if (!c.casing || !byClass[ci].length) { return; }
        trace(ctx, byClass[ci], s, ox, oy);
        ctx.globalAlpha = 0.9; ctx.strokeStyle = D.casing; ctx.lineWidth = c.weight + 3;
        ctx.lineCap = "round"; ctx.setLineDash([]); ctx.stroke(); ctx.globalAlpha = 1;
      });
      D.classes.forEach(function (c, ci) {
        if (!byClass[ci].length) { return; }
        trace(ctx, byClass[ci], s, ox, oy);
        ctx.strokeStyle = c.colour; ctx.lineWidth = c.weight;
        ctx.lineCap = c.dash ? "butt" : "round";
        ctx.setLineDash(c.dash ? c.dash.split(" ").map(Number) : []);
        ctx.stroke();
        drawn.features += byClass[ci].length;
      });
      drawn.tiles += 1;
      var ms = performance.now() - t0;
      drawn.ms += ms; drawn.maxMs = Math.max(drawn.maxMs, ms);
    }
    var tiles = canvasTiles(draw, "crRoads", "convoyrisk-roads-tiles");
    /* hover: the nearest feature under the pointer, the top-drawn class first */
    function dist2(px, py, i, s) {
      var best = Infinity;
      for (var v = start[i]; v < start[i + 1]; v++) {
        var ax = X[v] * s, ay = Y[v] * s;
        if (v === start[i] || brk[v]) {
          best = Math.min(best, (px - ax) * (px - ax) + (py - ay) * (py - ay)); continue;
        }
        var bx = X[v - 1] * s, by = Y[v - 1] * s, dx = ax - bx, dy = ay - by;
        var l2 = dx * dx + dy * dy, u = l2 ? ((px - bx) * dx + (py - by) * dy) / l2 : 0;
        u = Math.max(0, Math.min(1, u));
        var qx = bx + u * dx - px, qy = by + u * dy - py;
        best = Math.min(best, qx * qx + qy * qy);
      }
      return best;
    }
    function hit(latlng, z) {
      var s = Math.pow(2, z), p = map.options.crs.latLngToPoint(latlng, z);
      var tol = 4 + maxWeight / 2, found = -1, score = -Infinity;
      each(z, (p.x - tol) / s, (p.y - tol) / s, (p.x + tol) / s, (p.y + tol) / s, function (i) {
        var c = D.classes[cls[i]], reach = c.weight / 2 + 4, d2 = dist2(p.x, p.y, i, s);
        if (d2 > reach * reach) { return; }
        var sc = cls[i] * 1e6 - d2;
        if (sc > score) { score = sc; found = i; }
      });
      return found;
    }
    function latlngs(i) {
      var out = [], part = null;
      for (var v = start[i]; v < start[i + 1]; v++) {
        if (v === start[i] || brk[v]) { part = []; out.push(part); }
        part.push(map.options.crs.pointToLatLng(L.point(X[v], Y[v]), 0));
      }
      return out;
    }
    function tip(i) {
      var c = D.classes[cls[i]];
      var box = el("div", "cr-tip");
      var name = road[i] > 0 ? R.names[road[i] - 1] : "Road";
      box.appendChild(el("b", null, name + ": " + c.name + (c.name === "insufficient data" ? "" : " risk")));
      line(box, count[i] > 1 ? "segments" : "segment",
           count[i] > 1 ? count[i] + " in a row, from " + ids[i] + " (worst shown)" : ids[i]);
      (R.km[i] || []).forEach(function (kk) {
        line(box, "route " + kk[0], "km " + kk[1] + (kk[2] - kk[1] >= 1.5 ? "–" + kk[2] : ""));
      });
      var rt = sig(rate[i]);
      line(box, "rate", rt + " per km per 30 days: " + words(rt));
      line(box, D.level + " interval", sig(low[i]) + " – " + sig(high[i]));
      if (nInc && nInc[i] > 0) { line(box, "incidents on the segment", nInc[i]); }
      var who = "listed for elevated and worse roads only on a country map";
      if (topAt[i] >= 0) {
        var at = topAt[i], items = [];
        for (var q = 0; q < tops[at]; q++) {
          var label = R.items[tops[at + 1 + 2 * q]], pct = tops[at + 2 + 2 * q];
          items.push(pct ? label + " (" + (pct - 1) + "%)" : label);
        }
        who = items.join("; ") || "none within reach";
      }
      line(box, "incidents that weigh most", who);
      return box;
    }
    var tooltip = L.tooltip({ direction: "top", offset: [0, -8], className: "cr-road-tip" });
    var lit = L.layerGroup(), litRenderer = L.svg({ pane: "crRoads" }), shown = -1, pending = null;
    function hover() {
      var e = pending; pending = null;
      if (!e || !map.hasLayer(tiles) || (map.dragging && map.dragging.moving())) { return; }
      var i = hit(e.latlng, map.getZoom());
      if (i !== shown) {
        lit.clearLayers();
        shown = i;
        if (i >= 0) {
          var c = D.classes[cls[i]];
          lit.addLayer(L.polyline(latlngs(i), { pane: "crRoads", renderer: litRenderer,
            color: c.colour, weight: c.weight + 3, opacity: 1, interactive: false,
            lineCap: "round", lineJoin: "round", dashArray: c.dash, className: "cr-road-lit" }));
          tooltip.setContent(tip(i));
        }
      }
      map.getContainer().style.cursor = i >= 0 ? "pointer" : "";
      if (i >= 0) { tooltip.setLatLng(e.latlng); if (!map.hasLayer(tooltip)) { map.openTooltip(tooltip); } }
      else if (map.hasLayer(tooltip)) { map.closeTooltip(tooltip); }
    }
    map.on("mousemove", function (e) {
      if (!pending) { requestAnimationFrame(hover); }
      pending = e;
    });
    map.on("mouseout zoomstart", function () {
      lit.clearLayers(); shown = -1;
      if (map.hasLayer(tooltip)) { map.closeTooltip(tooltip); }
    });
    /* what the overview leaves out, said on the map while it does */
    var Note = L.Control.extend({ onAdd: function () {
      var div = L.DomUtil.create("div", "convoyrisk-panel cr-lod-note");
      div.setAttribute("role", "status");
      return div;
    } });
    var note = new Note({ position: "bottomright" }).addTo(map);
    function sayLevel() {
      var z = map.getZoom(), box = note.getContainer();
      box.style.display = z < R.detailZoom ? "" : "none";
      box.textContent = "Low-risk and insufficient-data minor roads, and each incident, appear from zoom " +
        R.detailZoom + " (now " + Math.round(z * 10) / 10 + "); the grey heat shows where incidents are.";
    }
    map.on("zoomend", sayLevel);
    map.whenReady(sayLevel);
    var group = L.layerGroup([tiles, lit]);
    group.on("add", function () { note.getContainer().style.visibility = ""; });
    group.on("remove", function () { note.getContainer().style.visibility = "hidden"; });
    window.convoyriskRoads = {
      layer: tiles, size: n, overview: R.overview, detailZoom: R.detailZoom, drawn: drawn,
      pending: function () { return tileQueue.length; },
      hit: function (lat, lon) { return hit(L.latLng(lat, lon), map.getZoom()); },
      feature: function (i) {
        var ll = latlngs(i)[0];
        return { cls: D.classes[cls[i]].name, id: ids[i], count: count[i], rate: sig(rate[i]),
                 mid: ll[Math.floor(ll.length / 2)], latlngs: latlngs(i) };
      },
      tip: function (i) { return tip(i).textContent; }
    };
    return group;
  }

  /* Road segments (or runs of them): colour, width, dash and casing by class. */
  var R = D.roads;
  var roads, roadLayer;
  if (R.country) {
    roadLayer = countryRoads(map, D, R);
    roads = roadLayer;
  } else {
    var renderer = R.canvas ? L.canvas({ pane: "crRoads", tolerance: 3 }) : L.svg({ pane: "crRoads" });
    var casingRenderer = R.canvas ? L.canvas({ pane: "crCasing" }) : L.svg({ pane: "crCasing" });
    roads = L.featureGroup();
    var casings = L.layerGroup();
    R.parts.forEach(function (parts, i) {
      var c = D.classes[R.cls[i]];
      var latlngs = decode(parts);
      if (c.casing) {
        casings.addLayer(L.polyline(latlngs, {
          pane: "crCasing", renderer: casingRenderer, color: D.casing, weight: c.weight + 3,
          opacity: 0.9, interactive: false, lineCap: "round", lineJoin: "round",
          className: "cr-casing"
        }));
      }
      var seg = L.polyline(latlngs, {
        pane: "crRoads", renderer: renderer, color: c.colour, weight: c.weight, dashArray: c.dash,
        opacity: 1, lineCap: c.dash ? "butt" : "round", lineJoin: "round",
        className: "convoyrisk-segment cr-" + c.name.replace(/ /g, "-")
      });
      seg.crIndex = i;
      roads.addLayer(seg);
    });
    roads.bindTooltip(function (layer) {
      var i = layer.crIndex, c = D.classes[R.cls[i]];
      var box = el("div", "cr-tip");
      var road = R.road[i] >= 0 ? R.names[R.road[i]] : "Road";
      box.appendChild(el("b", null, road + ": " + c.name + (c.name === "insufficient data" ? "" : " risk")));
      var count = R.count ? R.count[i] : 1;
      line(box, count > 1 ? "segments" : "segment",
           count > 1 ? count + " in a row, from " + R.id[i] + " (worst shown)" : R.id[i]);
      (R.km[i] || []).forEach(function (k) {
        line(box, "route " + k[0], "km " + k[1] + (k[2] - k[1] >= 1.5 ? "–" + k[2] : ""));
      });
      line(box, "rate", R.rate[i] + " per km per 30 days: " + words(R.rate[i]));
      line(box, D.level + " interval", R.low[i] + " – " + R.high[i]);
      var top = R.top[i] < 0 ? null : R.labels[R.top[i]];
      if (R.n && R.n[i] > 0) { line(box, "incidents on the segment", R.n[i]); }
      line(box, "incidents that weigh most", top || "none within reach");
      return box;
    }, { sticky: true, direction: "top", offset: [0, -8] });
    roads.on("mouseover", function (e) {
      e.layer.setStyle({ weight: D.classes[R.cls[e.layer.crIndex]].weight + 3 });
    });
    roads.on("mouseout", function (e) {
      e.layer.setStyle({ weight: D.classes[R.cls[e.layer.crIndex]].weight });
    });
    roadLayer = L.layerGroup([casings, roads]);
  }

  overlays.push(["Road risk", roadLayer, true]);
  overlays = overlays.concat(routeLayers);

  /* The worst segments of each route, labelled beside them (never over them). */
  var worst = null;
  if (D.worst.length) {
    worst = L.layerGroup();
    D.worst.forEach(function (w) {
      var tag = el("div", "cr-worst cr-" + w.cls.replace(/ /g, "-"), w.text);
      worst.addLayer(L.marker([w.lat, w.lon], {
        icon: L.divIcon({ className: "cr-worst-icon", html: tag, iconSize: null, iconAnchor: [-12, 30] }),
        interactive: false, keyboard: false, pane: "crLabels"
      }));
    });
    overlays.push(["Worst segments (labels)", worst, true]);
    /* a label that would leave the map is moved back in (it stays above its segment) */
    var flip = function () {
      var box = map.getContainer().getBoundingClientRect();
      worst.eachLayer(function (mk) {
        var tag = mk.getElement() && mk.getElement().firstChild;
        if (!tag) { return; }
        tag.style.transform = "";
        var r = tag.getBoundingClientRect();
        var over = Math.min(r.right - (box.right - 4), r.left - (box.left + 4));
        if (over > 0) { tag.style.transform = "translateX(" + (-over) + "px)"; }
      });
    };
    map.on("zoomend moveend", flip);
    worst.on("add", function () { setTimeout(flip, 0); });
  }

  /* Incidents: hollow rings (the road colour shows through), with honest uncertainty. */
  var I = D.incidents;
  if (I.columns) {  /* a country map's incidents come as packed columns (convoyrisk.maps._columns) */
    var cols = I.columns, keys = Object.keys(cols), unpacked = {}, nRows = 0;
    keys.forEach(function (key) {
      var col = cols[key], vals;
      if (col.codes !== undefined) {
        vals = Array.prototype.map.call(varints(col.codes), function (c) { return col.values[c]; });
      } else if (col.fixed !== undefined) {
        var k10 = Math.pow(10, col.fixed);
        vals = Array.prototype.map.call(sums(col.deltas), function (v) { return v / k10; });
      } else {
        vals = Array.prototype.map.call(varints(col.ints), function (v) { return v ? unzig(v - 1) : null; });
      }
      unpacked[key] = vals;
      nRows = vals.length;
    });
    I.rows = [];
    for (var ri = 0; ri < nRows; ri++) {
      var rec = {};
      keys.forEach(function (key) { rec[key] = unpacked[key][ri]; });
      I.rows.push(rec);
    }
  }
  /* a MarkerCluster cluster drawn like a group (a sample of its markers sets the look) */
  function clusterIcon(cluster) {
    var ms = cluster.getAllChildMarkers(), step = Math.max(1, Math.floor(ms.length / 200));
    var ps = [], at = map.latLngToLayerPoint(cluster.getLatLng());
    for (var i = 0; i < ms.length; i += step) {
      ps.push(map.latLngToLayerPoint(ms[i].getLatLng()).subtract(at));
    }
    var n = ms.length, used = ms.filter(function (m) { return !m.crUnused; }).length;
    var look = aggIcon(ps, n, used);
    /* the icon sits at the cluster's position: the ring goes around the markers drawn */
    look.box.style.transform = "translate(" + Math.round(look.centre.x) + "px," + Math.round(look.centre.y) + "px)";
    return L.divIcon({ className: "cr-agg-icon", html: look.box, iconSize: [0, 0], iconAnchor: [0, 0] });
  }
  var countryInc = D.roads.country ? countryIncidents(I.rows, D.roads.detailZoom) : null;
  var circles = countryInc ? countryInc.circles : L.layerGroup();
  var circleOf = {};
  var marks = [];
  var incidents = countryInc ? countryInc.layer : I.cluster
    ? L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false,
                             spiderfyOnMaxZoom: true, chunkedLoading: true,
                             animate: !D.roads.country,  /* a country's thousands: no zoom animation */
                             iconCreateFunction: clusterIcon })
    : L.featureGroup();
  (countryInc ? [] : I.rows).forEach(function (r) {
    var cls = "convoyrisk-incident" + (r.used === "used" ? "" : " cr-unused");
    var icon = L.divIcon({ className: cls, iconSize: [14, 14],
                           iconAnchor: [7 - r.dx, 7 - r.dy], popupAnchor: [r.dx, r.dy - 7] });
    var m = L.marker([r.lat, r.lon], { icon: icon, title: r.type + " " + r.date, riseOnHover: true,
                                       keyboard: false });
    m.bindPopup(function () { return incidentBox(r); }, { minWidth: 260, maxWidth: 340, autoPanPaddingTopLeft: [narrow ? 10 : 470, 10] });
    m.crDay = r.day;
    m.crUnused = r.used !== "used";
    marks.push(m);
    incidents.addLayer(m);
    if (r.radius > 0) {
      var key = r.lat + "," + r.lon + "," + r.radius;
      if (!circleOf[key]) {
        circleOf[key] = { n: 0, layer: L.circle([r.lat, r.lon], {
          pane: "crUncertainty", radius: r.radius, interactive: false, color: D.incidentColour,
          weight: 1, dashArray: "5 5", fill: true, fillOpacity: 0.04,
          className: "convoyrisk-uncertainty" }) };
        circles.addLayer(circleOf[key].layer);
      }
      circleOf[key].n += 1;
      m.crCircle = circleOf[key];
    }
  });
  /* Dense incidents never hide the road: where AGG_MIN or more rings would pile up within
     about AGG_R px (at any zoom under the last), they are drawn as one thin hollow ring
     around them (the road's colour shows through) and a count placed beside the road
     (across the line the incidents lie along); a click on the count zooms in until they
     part. The markers stay in the page (hidden while grouped). Clustered maps (many
     incidents) use MarkerCluster instead, with the same hollow look. */
  var AGG_R = 16, AGG_MIN = 3;
  var aggs = L.layerGroup();
  function regroup() {
    aggs.clearLayers();
    var shown = marks.filter(function (m) { return m.getElement() && incidents.hasLayer(m); });
    shown.forEach(function (m) { L.DomUtil.removeClass(m.getElement(), "cr-agg-hidden"); });
    if (I.cluster || countryInc || !map.hasLayer(incidents) || map.getZoom() >= map.getMaxZoom()) { return; }
    var pts = shown.map(function (m) { return map.latLngToLayerPoint(m.getLatLng()); });
    var grid = {};
    function cell(p) { return Math.floor(p.x / AGG_R) + "," + Math.floor(p.y / AGG_R); }
    pts.forEach(function (p, i) { (grid[cell(p)] = grid[cell(p)] || []).push(i); });
    function near(i, r) {
      var p = pts[i], out = [], cx = Math.floor(p.x / AGG_R), cy = Math.floor(p.y / AGG_R);
      var k = Math.ceil(r / AGG_R);
      for (var a = cx - k; a <= cx + k; a++) {
        for (var b = cy - k; b <= cy + k; b++) {
          (grid[a + "," + b] || []).forEach(function (j) { if (p.distanceTo(pts[j]) <= r) { out.push(j); } });
        }
      }
      return out;
    }
    var degree = pts.map(function (p, i) { return near(i, AGG_R).length; });
    var order = pts.map(function (p, i) { return i; }).sort(function (a, b) { return degree[b] - degree[a]; });
    var taken = pts.map(function () { return false; });
    order.forEach(function (i) {
      if (taken[i] || degree[i] < AGG_MIN) { return; }
      var members = near(i, 2 * AGG_R).filter(function (j) { return !taken[j]; });
      if (members.length < AGG_MIN) { return; }
      members.forEach(function (j) { taken[j] = true; L.DomUtil.addClass(shown[j].getElement(), "cr-agg-hidden"); });
      aggs.addLayer(aggregate(members.map(function (j) { return shown[j]; }),
                              members.map(function (j) { return pts[j]; })));
    });
  }
  /* The look of a group: a thin hollow ring around its incidents (layer points `ps`) and
     its count across the line they lie along (their principal axis), off the road. */
  function aggIcon(ps, n, used) {
    var k = ps.length, mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0, rad = 0;
    ps.forEach(function (p) { mx += p.x / k; my += p.y / k; });
    ps.forEach(function (p) {
      var dx = p.x - mx, dy = p.y - my;
      sxx += dx * dx; syy += dy * dy; sxy += dx * dy;
      rad = Math.max(rad, Math.sqrt(dx * dx + dy * dy));
    });
    rad = Math.ceil(rad) + 8;
    var t = 0.5 * Math.atan2(2 * sxy, sxx - syy), nx = -Math.sin(t), ny = Math.cos(t);
    /* below the line: the worst segments' labels sit above theirs */
    if (sxx + syy < 4 * k) { nx = 0; ny = 1; }
    if (ny < 0) { nx = -nx; ny = -ny; }
    var box = el("div", "cr-agg");
    var ring = el("div", "cr-agg-ring");
    ring.style.width = ring.style.height = 2 * rad + "px";
    ring.style.left = ring.style.top = -rad + "px";
    var count = el("button", "cr-agg-count", n + (n === used ? "" : " (" + used + " used)"));
    count.type = "button";
    count.title = n + " incidents here: click to zoom in to them";
    count.setAttribute("tabindex", "-1");
    var d = rad + 13;
    count.style.left = Math.round(nx * d) + "px";
    count.style.top = Math.round(ny * d) + "px";
    box.appendChild(ring);
    box.appendChild(count);
    return { box: box, count: count, centre: L.point(mx, my) };
  }
  function aggregate(ms, ps) {
    var n = ms.length, used = ms.filter(function (m) { return !m.crUnused; }).length;
    var look = aggIcon(ps, n, used), box = look.box, count = look.count;
    L.DomEvent.disableClickPropagation(count);
    var centre = map.layerPointToLatLng(look.centre);
    var bounds = L.latLngBounds(ms.map(function (m) { return m.getLatLng(); }));
    var mk = L.marker(centre, {
      icon: L.divIcon({ className: "cr-agg-icon", html: box, iconSize: [0, 0], iconAnchor: [0, 0] }),
      keyboard: false, interactive: false, pane: "crLabels"
    });
    L.DomEvent.on(count, "click", function (e) {
      L.DomEvent.stop(e);
      var z = Math.max(map.getBoundsZoom(bounds.pad(0.3)), map.getZoom() + 2);
      map.setView(bounds.getCenter(), Math.min(z, map.getMaxZoom()));
    });
    mk.crMembers = ms;
    return mk;
  }
  map.on("zoomend viewreset", regroup);
  incidents.on("add", function () { aggs.addTo(map); regroup(); });
  incidents.on("remove", function () { map.removeLayer(aggs); });
  overlays.push(["Incidents (" + I.rows.length + ")", incidents, true]);
  if (I.rows.some(function (r) { return r.radius > 0; })) {
    /* many circles hide the roads: with clustered incidents they start hidden */
    overlays.push(["Position uncertainty (radius)", circles, !I.cluster && !countryInc]);
  }

  var heat = null;
  if (D.heat) {
    if (!L.HeatLayer.prototype.crPatched) {
      /* simpleheat reads its canvas back on every draw: ask for a canvas made for that */
      var init = L.HeatLayer.prototype._initCanvas;
      L.HeatLayer.prototype._initCanvas = function () {
        var create = L.DomUtil.create;
        L.DomUtil.create = function (tag, cls, parent) {
          var e = create(tag, cls, parent);
          if (tag === "canvas") { e.getContext("2d", { willReadFrequently: true }); }
          return e;
        };
        try { init.call(this); } finally { L.DomUtil.create = create; }
      };
      /* the heat goes under the roads and routes, in a pane that takes no pointer */
      var onAdd = L.HeatLayer.prototype.onAdd, onRemove = L.HeatLayer.prototype.onRemove;
      L.HeatLayer.prototype.onAdd = function (m) {
        onAdd.call(this, m);
        m.getPane("crHeat").appendChild(this._canvas);
        this._canvas.style.pointerEvents = "none";
      };
      L.HeatLayer.prototype.onRemove = function (m) {
        m.getPanes().overlayPane.appendChild(this._canvas);
        onRemove.call(this, m);
      };
      L.HeatLayer.prototype.crPatched = true;
    }
    heat = countryInc ? countryInc.heat : L.heatLayer(I.rows.map(function (r) { return [r.lat, r.lon, 1]; }), HEAT);
    /* in a group: the layer control would read the heat's maxZoom (its intensity scale)
       as a zoom limit and grey the layer out */
    overlays.push(["Incident heat (grey)", L.layerGroup([heat]), D.heat.show]);
  }

  /* Places: dots under the roads (a road through a town keeps its colour), names above. */
  if (D.places.length) {
    var places = L.layerGroup();
    D.places.forEach(function (p) {
      var dot = L.circleMarker([p.lat, p.lon], {
        pane: "crPlaceDots", radius: p.town ? 5 : 3, color: p.town ? "#333" : "#08519c",
        weight: 1.5, fillColor: p.town ? "#fff" : "#6baed6", fillOpacity: 1,
        className: "convoyrisk-place"
      });
      dot.bindTooltip(el("span", null, p.name + (p.kind ? " (" + p.kind + ")" : "")));
      places.addLayer(dot);
      if (p.town) {
        var label = el("div", "cr-label", p.name);
        places.addLayer(L.marker([p.lat, p.lon], {
          icon: L.divIcon({ className: "cr-label-icon", html: label, iconSize: null,
                            iconAnchor: [-8, 18] }),
          interactive: false, keyboard: false, pane: "crLabels"
        }));
      }
    });
    overlays.push(["Places", places, true]);
  }

  /* A lat/lon grid for the current view (off on screen, always on paper). */
  var grid = L.layerGroup();
  function drawGrid() {
    grid.clearLayers();
    var b = map.getBounds(), span = Math.max(b.getEast() - b.getWest(), b.getNorth() - b.getSouth());
    var step = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10].find(function (s) { return span / s <= 8; }) || 10;
    function lab(v, pos, neg) { return Math.abs(v).toFixed(step < 0.1 ? 2 : step < 1 ? 2 : 0).replace(/\.?0+$/, "") + "°" + (v >= 0 ? pos : neg); }
    var style = { color: "#777", weight: 0.6, opacity: 0.8, interactive: false, pane: "crUncertainty" };
    for (var x = Math.ceil(b.getWest() / step) * step; x <= b.getEast(); x += step) {
      grid.addLayer(L.polyline([[b.getSouth(), x], [b.getNorth(), x]], style));
      grid.addLayer(L.marker([b.getSouth(), x], { interactive: false, keyboard: false, pane: "crLabels",
        icon: L.divIcon({ className: "cr-grid-icon", html: el("div", "cr-grid-label", lab(x, "E", "W")), iconSize: null, iconAnchor: [-2, 14] }) }));
    }
    for (var y = Math.ceil(b.getSouth() / step) * step; y <= b.getNorth(); y += step) {
      grid.addLayer(L.polyline([[y, b.getWest()], [y, b.getEast()]], style));
      grid.addLayer(L.marker([y, b.getWest()], { interactive: false, keyboard: false, pane: "crLabels",
        icon: L.divIcon({ className: "cr-grid-icon", html: el("div", "cr-grid-label", lab(y, "N", "S")), iconSize: null, iconAnchor: [-2, 12] }) }));
    }
  }
  map.on("moveend", function () { if (map.hasLayer(grid)) { drawGrid(); } });
  grid.on("add", drawGrid);
  overlays.push(["Lat/lon grid", grid, false]);

  /* Layer control: collapsed on small screens; first in its corner (few Tab stops to it). */
  if (D.tiles.length) {
    var none = L.layerGroup();
    bases["No background (offline)"] = none;
    D.tiles.forEach(function (t) { bases[t[0]] = window[t[1]]; });
    if (!D.tilesShown && !D.basemap) { none.addTo(map); }
  }
  var named = {};
  overlays.forEach(function (o) { named[o[0]] = o[1]; });
  var layers = L.control.layers(bases, named, { collapsed: D.collapseLayers || narrow,
                                                position: "topright" }).addTo(map);
  var corner = layers.getContainer().parentNode;
  corner.insertBefore(layers.getContainer(), corner.firstChild);
  corner.parentNode.insertBefore(corner, corner.parentNode.firstChild);

  /* North arrow (shown on paper). */
  var North = L.Control.extend({ onAdd: function () {
    var div = L.DomUtil.create("div", "leaflet-control cr-north");
    div.appendChild(el("div", null, "▲"));
    div.appendChild(el("div", null, "N"));
    return div;
  } });
  new North({ position: "bottomright" }).addTo(map);

  /* Panels, built and escaped in Python. */
  function panel(html, position, cls) {
    var Panel = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "convoyrisk-panel " + cls);
        div.innerHTML = html;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        return div;
      }
    });
    return new Panel({ position: position }).addTo(map);
  }
  var made = {};
  D.panels.forEach(function (p) { made[p[2]] = panel(p[0], p[1], p[2]); });
  var brief = made["cr-briefing"] && made["cr-briefing"].getContainer();
  var foot = made["cr-footer"] && made["cr-footer"].getContainer();
  if (brief) {
    brief.id = "cr-briefing";
    brief.tabIndex = -1;
    brief.setAttribute("role", "region");
    brief.setAttribute("aria-label", "Briefing");
    var copy = el("div", "cr-footer-copy");
    copy.innerHTML = D.footer;  /* built and escaped in Python */
    brief.appendChild(copy);
    var toggle = brief.querySelector(".cr-sheet-toggle");
    var setOpen = function (open) {
      brief.classList.toggle("cr-collapsed", !open);
      toggle.setAttribute("aria-expanded", String(open));
      toggle.textContent = open ? "hide" : "show briefing";
    };
    toggle.addEventListener("click", function () { setOpen(brief.classList.contains("cr-collapsed")); });
    if (narrow) { setOpen(false); }
    Array.prototype.forEach.call(brief.querySelectorAll(".cr-goto"), function (b) {
      b.addEventListener("click", function () {
        map.setView([Number(b.dataset.lat), Number(b.dataset.lon)], Math.max(map.getZoom(), 11));
        if (narrow) { setOpen(false); }
      });
    });
  }

  /* Skip link, first in the page: straight to the briefing (worst segments, routes). */
  var skip = el("a", "cr-skip", "Skip to the briefing: worst segments and routes");
  skip.href = "#cr-briefing";
  skip.addEventListener("click", function (e) {
    e.preventDefault();
    if (brief) { brief.classList.remove("cr-collapsed"); brief.focus(); }
  });
  document.body.insertBefore(skip, document.body.firstChild);
  /* controls before the map's panes in the DOM, so Tab reaches them first */
  var container = map.getContainer();
  container.insertBefore(map._controlContainer, container.firstChild);

  /* Handling marking, top of the map (and top and bottom of the printed page). */
  if (D.marking) {
    ["cr-marking cr-marking-top", "cr-marking cr-marking-bottom"].forEach(function (c) {
      container.appendChild(el("div", c, D.marking));
    });
  }

  /* Time slider over incident dates (filters markers, circles and heat, not the roads). */
  if (D.slider) {
    var Slider = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "convoyrisk-panel cr-slider");
        div.appendChild(el("b", null, "Incidents by date"));
        var input = el("input");
        input.type = "range"; input.min = 0; input.max = D.slider.days; input.step = 1;
        input.value = D.slider.days;
        input.setAttribute("aria-label", "Show incidents up to this day");
        var sel = el("select");
        sel.setAttribute("aria-label", "Window of days shown");
        [["all", "all before"], ["90", "90 days before"], ["30", "30 days before"],
         ["7", "7 days before"], ["1", "that day"]].forEach(function (o) {
          var opt = el("option", null, o[1]); opt.value = o[0]; sel.appendChild(opt);
        });
        var out = el("div", "cr-slider-label");
        div.appendChild(input); div.appendChild(sel); div.appendChild(out);
        div.appendChild(el("div", "cr-note", "Road colours stay those of the as-of date (" +
          D.asOf + "); the slider filters the incidents and their heat only."));
        function update() {
          var t = Number(input.value), w = sel.value === "all" ? Infinity : Number(sel.value);
          var shown = 0, pts = [];
          if (countryInc) {
            var got = countryInc.show(t, w);
            shown = got.count; pts = got.pts;
          }
          Object.keys(circleOf).forEach(function (k) { circleOf[k].live = 0; });
          marks.forEach(function (m, i) {
            var on = m.crDay <= t && m.crDay > t - w;
            if (on) {
              shown += 1; pts.push([I.rows[i].lat, I.rows[i].lon, 1]);
              if (m.crCircle) { m.crCircle.live += 1; }
              if (!incidents.hasLayer(m)) { incidents.addLayer(m); }
            } else if (incidents.hasLayer(m)) { incidents.removeLayer(m); }
          });
          regroup();
          Object.keys(circleOf).forEach(function (k) {
            var c = circleOf[k];
            if (c.live && !circles.hasLayer(c.layer)) { circles.addLayer(c.layer); }
            if (!c.live && circles.hasLayer(c.layer)) { circles.removeLayer(c.layer); }
          });
          if (heat && !countryInc) { heat.setLatLngs(pts); }
          var day = new Date(Date.parse(D.slider.start) + t * 86400000).toISOString().slice(0, 10);
          out.textContent = "up to " + day + ": " + shown + " of " + I.rows.length + " shown";
        }
        input.addEventListener("input", update);
        sel.addEventListener("change", update);
        update();
        L.DomEvent.disableClickPropagation(div);
        return div;
      }
    });
    new Slider({ position: "bottomleft" }).addTo(map);
  }

  /* Minimap of the roads (vector, so it works offline). */
  var mini = null;
  if (D.minimap && L.Control.MiniMap) {
    var ctx = L.layerGroup();
    var miniStyle = { color: "#555", weight: 1, interactive: false };
    if (D.roads.country) {
      /* one path for all its roads: the minimap moves with every pan and zoom */
      var all = [];
      D.minimap.lines.forEach(function (parts) { all = all.concat(decode(parts, Math.pow(10, D.minimap.decimals))); });
      ctx.addLayer(L.polyline(all, miniStyle));
    } else {
      D.minimap.lines.forEach(function (parts) {
        ctx.addLayer(L.polyline(decode(parts, Math.pow(10, D.minimap.decimals)), miniStyle));
      });
    }
    mini = new L.Control.MiniMap(ctx, {
      position: "bottomright", width: 140, height: 140, zoomLevelOffset: -4,
      toggleDisplay: false, aimingRectOptions: { color: "#65032d", weight: 1, interactive: false },
      shadowRectOptions: { color: "#000", weight: 1, opacity: 0, fillOpacity: 0 }
    }).addTo(map);
  }

  /* Fit the routes (or the roads), plus a margin, into the part the panels leave free. */
  function rightWidth() {
    var corners = map.getContainer().querySelectorAll(".leaflet-top.leaflet-right");
    return Math.max.apply(null, Array.prototype.map.call(corners, function (c) {
      return c.offsetWidth; }).concat([0]));
  }
  function fitView() {
    var size = map.getSize();
    var target = L.latLngBounds(D.fit).pad(0.05);
    if (narrow || !brief) {
      var sheet = brief ? brief.offsetHeight : 0;
      map.fitBounds(target, { paddingTopLeft: [12, 50], paddingBottomRight: [12, sheet + 30], animate: false });
      return;
    }
    var wide = brief.offsetWidth + 30 < size.x / 2;
    map.fitBounds(target, {
      paddingTopLeft: [wide ? brief.offsetWidth + 30 : 10, 20],
      paddingBottomRight: [Math.min(rightWidth() + 20, size.x / 4),
                           foot ? foot.offsetHeight + 30 : 10],
      animate: false
    });
  }
  fitView();
  /* the minimap was built before its container was on the page: let it measure itself */
  if (mini) { mini._miniMap.invalidateSize(); }
  /* the layers go on the map once its view is set (marker clusters want a settled view) */
  overlays.forEach(function (o) { if (o[2]) { o[1].addTo(map); } });

  /* Print: A4 landscape, the whole network beside the briefing, with a grid. */
  var saved = null, gridWasOn = false;
  window.addEventListener("beforeprint", function () {
    var c = map.getContainer(), mm = 96 / 25.4;
    saved = { width: c.style.width, height: c.style.height, center: map.getCenter(), zoom: map.getZoom() };
    c.style.width = Math.floor(283 * mm) + "px";
    c.style.height = Math.floor(196 * mm) + "px";
    map.invalidateSize({ animate: false, pan: false });
    gridWasOn = map.hasLayer(grid);
    map.fitBounds(D.bounds, { paddingTopLeft: [16, D.marking ? 34 : 16],
                              paddingBottomRight: [Math.ceil(88 * mm) + 16, (D.marking ? 34 : 16) + 40],
                              animate: false });
    if (!gridWasOn) { grid.addTo(map); } else { drawGrid(); }
    flushTiles();  /* the page prints now: draw every tile asked for (country maps) */
    window.convoyriskPrint = { contains: map.getBounds().contains(L.latLngBounds(D.bounds)),
                               size: [map.getSize().x, map.getSize().y] };
  });
  window.addEventListener("afterprint", function () {
    if (!saved) { return; }
    var c = map.getContainer();
    c.style.width = saved.width; c.style.height = saved.height;
    map.invalidateSize({ animate: false, pan: false });
    map.setView(saved.center, saved.zoom, { animate: false });
    if (!gridWasOn) { map.removeLayer(grid); }
    saved = null;
  });

  window.convoyriskLayers = {
    roads: roads, incidents: incidents, markers: marks, countryIncidents: countryInc, heat: heat, routes: bands, aggregates: aggs,
    worst: worst, grid: grid, layers: layers, context: context
  };
}
