/* convoyrisk briefing map: draws the layers and panels from the JSON that
 * convoyrisk.maps writes into the page. Data never becomes markup: every
 * value from the data goes into the page through textContent or an
 * attribute, never through innerHTML. The panels' HTML is built and escaped
 * in Python. */
function convoyriskBriefing(map, D) {
  "use strict";
  var S = Math.pow(10, D.decimals);

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

  [["crUncertainty", 350], ["crRoutes", 380], ["crRoads", 420], ["crPlaces", 440]].forEach(
    function (p) { map.createPane(p[0]).style.zIndex = p[1]; }
  );
  map.getPane("crUncertainty").style.pointerEvents = "none";
  map.getContainer().style.background = D.background;
  /* with no tile layer Leaflet has no zoom limit, and marker clusters need one */
  if (map.options.maxZoom === undefined) { map.setMaxZoom(18); }
  L.control.scale({ imperial: false, maxWidth: 160 }).addTo(map);

  var overlays = [], routeLayers = [];

  /* Routes: wide translucent bands under the roads, best route widest. */
  var bands = [];
  D.routes.forEach(function (r) {
    var band = L.polyline(decode(r.parts), {
      pane: "crRoutes", color: r.colour, weight: r.weight, opacity: 0.5,
      lineCap: "round", lineJoin: "round", className: "convoyrisk-route"
    });
    band.bindPopup(function () {
      var box = el("div", "cr-popup");
      box.appendChild(el("b", null, r.label));
      r.lines.forEach(function (kv) { line(box, kv[0], kv[1]); });
      return box;
    }, { minWidth: 240, maxWidth: 340 });
    routeLayers.push([r.label, band, r.show]);
    bands.push(band);
  });

  /* Road segments coloured by risk class. */
  var R = D.roads;
  var renderer = R.canvas ? L.canvas({ pane: "crRoads", tolerance: 3 }) : L.svg({ pane: "crRoads" });
  var roads = L.featureGroup();
  R.parts.forEach(function (parts, i) {
    var c = R.cls[i];
    var seg = L.polyline(decode(parts), {
      pane: "crRoads", renderer: renderer, color: D.classes[c].colour, weight: R.weight,
      opacity: 0.95, lineCap: "round", lineJoin: "round", className: "convoyrisk-segment cr-" + D.classes[c].name
    });
    seg.crIndex = i;
    roads.addLayer(seg);
  });
  roads.bindTooltip(function (layer) {
    var i = layer.crIndex, c = R.cls[i];
    var box = el("div", "cr-tip");
    var head = el("b", null, "Segment " + R.id[i] + ": " + D.classes[c].name + " risk");
    box.appendChild(head);
    line(box, "rate", R.rate[i] + " per km per 30 days");
    line(box, D.level + " interval", R.low[i] + " – " + R.high[i]);
    line(box, "incidents contributing", R.n[i]);
    var top = R.top[i] < 0 ? "none" : R.labels[R.top[i]];
    line(box, "top contributors", top);
    return box;
  }, { sticky: true, direction: "top", offset: [0, -6] });
  roads.on("mouseover", function (e) { e.layer.setStyle({ weight: R.weight + 4 }); });
  roads.on("mouseout", function (e) { e.layer.setStyle({ weight: R.weight }); });
  overlays.push(["Road risk", roads, true]);
  overlays = overlays.concat(routeLayers);

  /* Incidents: one marker each, with an honest uncertainty circle. */
  var I = D.incidents;
  var circles = L.layerGroup();
  var circleOf = {};
  var marks = [];
  var incidents = I.cluster
    ? L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false,
                             spiderfyOnMaxZoom: true, chunkedLoading: true })
    : L.featureGroup();
  I.rows.forEach(function (r) {
    var cls = "convoyrisk-incident" + (r.used === "used" ? "" : " cr-unused");
    var icon = L.divIcon({ className: cls, iconSize: [14, 14],
                           iconAnchor: [7 - r.dx, 7 - r.dy], popupAnchor: [r.dx, r.dy - 7] });
    var m = L.marker([r.lat, r.lon], { icon: icon, title: r.type + " " + r.date, riseOnHover: true });
    m.bindPopup(function () {
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
    }, { minWidth: 260, maxWidth: 340 });
    m.crDay = r.day;
    marks.push(m);
    incidents.addLayer(m);
    if (r.radius > 0) {
      var key = r.lat + "," + r.lon + "," + r.radius;
      if (!circleOf[key]) {
        circleOf[key] = { n: 0, layer: L.circle([r.lat, r.lon], {
          pane: "crUncertainty", radius: r.radius, interactive: false, color: "#7b3294",
          weight: 1, dashArray: "5 5", fill: true, fillOpacity: 0.06,
          className: "convoyrisk-uncertainty" }) };
        circles.addLayer(circleOf[key].layer);
      }
      circleOf[key].n += 1;
      m.crCircle = circleOf[key];
    }
  });
  overlays.push(["Incidents (" + I.rows.length + ")", incidents, true]);
  if (I.rows.some(function (r) { return r.radius > 0; })) {
    /* many circles hide the roads: with clustered incidents they start hidden */
    overlays.push(["Position uncertainty (radius)", circles, !I.cluster]);
  }

  var heat = null;
  if (D.heat) {
    /* simpleheat reads its canvas back on every draw: ask for a canvas made for that */
    if (!L.HeatLayer.prototype.crPatched) {
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
      L.HeatLayer.prototype.crPatched = true;
    }
    heat = L.heatLayer(I.rows.map(function (r) { return [r.lat, r.lon, 1]; }), {
      radius: 30, blur: 25, minOpacity: 0.15, maxZoom: 9,
      gradient: { 0.3: "#dadaeb", 0.6: "#9e9ac8", 0.85: "#6a51a3", 1.0: "#3f007d" }
    });
    /* in a group: the layer control would read the heat's maxZoom (its intensity scale)
       as a zoom limit and grey the layer out */
    overlays.push(["Incident heat", L.layerGroup([heat]), D.heat.show]);
  }

  /* Places as labels. */
  if (D.places.length) {
    var places = L.layerGroup();
    D.places.forEach(function (p) {
      var dot = L.circleMarker([p.lat, p.lon], {
        pane: "crPlaces", radius: p.town ? 4 : 3, color: p.town ? "#333" : "#08519c",
        weight: 1, fillColor: p.town ? "#333" : "#6baed6", fillOpacity: 1,
        className: "convoyrisk-place"
      });
      dot.bindTooltip(el("span", null, p.name + (p.kind ? " (" + p.kind + ")" : "")));
      places.addLayer(dot);
      if (p.town) {
        var label = el("div", "cr-label", p.name);
        places.addLayer(L.marker([p.lat, p.lon], {
          icon: L.divIcon({ className: "cr-label-icon", html: label, iconSize: null,
                            iconAnchor: [-6, 8] }),
          interactive: false, keyboard: false, pane: "crPlaces"
        }));
      }
    });
    overlays.push(["Places", places, true]);
  }

  /* Layer control: no tiles by default; online tiles as base layers when given. */
  var bases = {};
  if (D.tiles.length) {
    var none = L.layerGroup();
    bases["No background (offline)"] = none;
    D.tiles.forEach(function (t) { bases[t[0]] = window[t[1]]; });
    if (!D.tilesShown) { none.addTo(map); }
  }
  var named = {};
  overlays.forEach(function (o) { named[o[0]] = o[1]; });
  L.control.layers(bases, named, { collapsed: D.collapseLayers, position: "topright" }).addTo(map);

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

  /* Time slider over incident dates (filters markers, circles and heat). */
  if (D.slider) {
    var Slider = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "convoyrisk-panel cr-slider");
        div.appendChild(el("b", null, "Incidents by date"));
        var input = el("input");
        input.type = "range"; input.min = 0; input.max = D.slider.days; input.step = 1;
        input.value = D.slider.days;
        var sel = el("select");
        [["all", "all before"], ["90", "90 days before"], ["30", "30 days before"],
         ["7", "7 days before"], ["1", "that day"]].forEach(function (o) {
          var opt = el("option", null, o[1]); opt.value = o[0]; sel.appendChild(opt);
        });
        var out = el("div", "cr-slider-label");
        div.appendChild(input); div.appendChild(sel); div.appendChild(out);
        function update() {
          var t = Number(input.value), w = sel.value === "all" ? Infinity : Number(sel.value);
          var shown = 0, pts = [];
          Object.keys(circleOf).forEach(function (k) { circleOf[k].live = 0; });
          marks.forEach(function (m, i) {
            var on = m.crDay <= t && m.crDay > t - w;
            if (on) {
              shown += 1; pts.push([I.rows[i].lat, I.rows[i].lon, 1]);
              if (m.crCircle) { m.crCircle.live += 1; }
              if (!incidents.hasLayer(m)) { incidents.addLayer(m); }
            } else if (incidents.hasLayer(m)) { incidents.removeLayer(m); }
          });
          Object.keys(circleOf).forEach(function (k) {
            var c = circleOf[k];
            if (c.live && !circles.hasLayer(c.layer)) { circles.addLayer(c.layer); }
            if (!c.live && circles.hasLayer(c.layer)) { circles.removeLayer(c.layer); }
          });
          if (heat) { heat.setLatLngs(pts); }
          var day = new Date(Date.parse(D.slider.start) + t * 86400000).toISOString().slice(0, 10);
          out.textContent = "up to " + day + ": " + shown + " of " + marks.length + " shown";
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
    D.minimap.lines.forEach(function (parts) {
      ctx.addLayer(L.polyline(decode(parts, Math.pow(10, D.minimap.decimals)), { color: "#555", weight: 1, interactive: false }));
    });
    mini = new L.Control.MiniMap(ctx, {
      position: "bottomright", width: 160, height: 160, zoomLevelOffset: -4,
      toggleDisplay: false, aimingRectOptions: { color: "#a50026", weight: 1, interactive: false },
      shadowRectOptions: { color: "#000", weight: 1, opacity: 0, fillOpacity: 0 }
    }).addTo(map);
  }

  /* Fit the roads into the part of the map that the panels leave free. */
  function rightWidth() {
    var corners = map.getContainer().querySelectorAll(".leaflet-right");
    return Math.max.apply(null, Array.prototype.map.call(corners, function (c) {
      return c.offsetWidth; }).concat([0]));
  }
  var brief = made["cr-briefing"] && made["cr-briefing"].getContainer();
  var foot = made["cr-footer"] && made["cr-footer"].getContainer();
  var wide = brief && brief.offsetWidth + 30 < map.getSize().x / 2;
  map.fitBounds(D.bounds, {
    paddingTopLeft: [wide ? brief.offsetWidth + 30 : 10, 10],
    paddingBottomRight: [Math.min(rightWidth() + 70, map.getSize().x / 4),
                         foot ? foot.offsetHeight + 40 : 10]
  });
  /* the minimap was built before its container was on the page: let it measure itself */
  if (mini) { mini._miniMap.invalidateSize(); }
  /* the layers go on the map once its view is set (marker clusters want a settled view) */
  overlays.forEach(function (o) { if (o[2]) { o[1].addTo(map); } });
  window.convoyriskLayers = {
    roads: roads, incidents: incidents, markers: marks, heat: heat, routes: bands
  };
}
