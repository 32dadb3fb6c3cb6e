// page.js: the language model's page. Text is written in small chunks between frames, a few
// milliseconds of stepping each, so that the page never freezes; a Web Worker would be the
// other way, but Chromium refuses workers to pages opened from file://.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const BUDGET_MS = 12; // stepping per chunk; the rest of each frame is the browser's
  const KEPT_NUMBERS = 25e6; // every character's states are kept, so any unit can colour it
  const text = $("text");
  let model;
  let running = null; // the generation under way: { steps, count, started }
  let written = []; // per character shown: { char, row }, its span is text.children[i]
  let colourBy = null; // { layer, state, unit, at }, or null for plain text
  let scale = 0; // the largest |value| of the unit so far: colours are value / scale

  // The next chunk as soon as the browser has drawn and handled input: a message to the page
  // itself, which setTimeout would hold back 4 ms each time once its calls nest.
  const channel = new MessageChannel();
  channel.port1.onmessage = () => pump();
  const later = () => channel.port2.postMessage(null);

  function status(message, error = false) {
    $("status").textContent = message;
    $("status").classList.toggle("error", error);
  }

  // -- generating ------------------------------------------------------------------------

  function options() {
    const number = (id) => Number($(id).value);
    const greedy = $("greedy").checked;
    const temperature = number("temperature");
    const topK = Math.floor(number("top-k"));
    const topP = number("top-p");
    const length = Math.floor(number("length"));
    if (!greedy && !(temperature > 0)) throw new Error("The temperature must be > 0 (or tick Greedy).");
    if (!(topK >= 0 && topK <= model.chars.length)) throw new Error(`Top-k must be from 0 (off) to ${model.chars.length}.`);
    if (!(topP > 0 && topP <= 1)) throw new Error("Top-p must be in (0, 1]; 1 is off.");
    const longest = Math.floor(KEPT_NUMBERS / model.stateWidth);
    if (!(length >= 1 && length <= longest)) throw new Error(`The length must be from 1 to ${longest}.`);
    return { temperature, topK: topK || null, topP: topP < 1 ? topP : null, greedy, length, seed: Math.floor(number("seed")) || 0 };
  }

  function start(event) {
    event.preventDefault();
    finish();
    const prime = $("prime").value;
    let steps;
    try {
      if (!prime) throw new Error("Type a prime: the text the model reads before it writes.");
      model.encode(prime); // names any character the model does not know
      steps = model.generate(prime, options());
    } catch (error) {
      status(error.message, true);
      return;
    }
    text.textContent = "";
    written = [];
    scale = 0;
    running = { steps, count: 0, started: performance.now() };
    $("generate").disabled = true;
    $("stop").disabled = false;
    status("Writing…");
    later();
  }

  function pump() {
    if (!running) return;
    const end = performance.now() + BUDGET_MS;
    const first = written.length;
    const fragment = document.createDocumentFragment();
    let next;
    while (!(next = running.steps.next()).done) {
      const { char, prime, states } = next.value;
      const row = model.flatStates(states, new Float32Array(model.stateWidth));
      const span = document.createElement("span");
      span.textContent = char;
      if (prime) span.className = "prime";
      else running.count += 1;
      fragment.appendChild(span);
      written.push({ char, row });
      if (performance.now() > end) break;
    }
    text.appendChild(fragment);
    colour(first);
    const seconds = (performance.now() - running.started) / 1000;
    const rate = Math.round(running.count / Math.max(seconds, 1e-3));
    if (next.done) {
      finish(`Wrote ${running.count} characters (${rate} per second).`);
    } else {
      status(`Writing… ${running.count} characters (${rate} per second)`);
      later();
    }
  }

  function finish(message) {
    if (!running) return;
    if (message === undefined) message = `Stopped after ${running.count} characters.`;
    running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
    status(message);
  }

  // -- colouring by a unit ---------------------------------------------------------------

  function valueOf(entry) {
    return entry.row[colourBy.at];
  }

  // Colours the characters from `first` on; all of them when the scale grows.
  function colour(first = 0) {
    const spans = text.children;
    if (!colourBy) {
      for (let i = first; i < spans.length; i++) spans[i].style.background = "";
      return;
    }
    let peak = scale;
    for (let i = first; i < written.length; i++) peak = Math.max(peak, Math.abs(valueOf(written[i])));
    if (peak > scale) {
      scale = peak;
      first = 0;
    }
    for (let i = first; i < written.length; i++) {
      const value = valueOf(written[i]);
      spans[i].style.background = UnfoldRNN.activationColour(value, scale);
      spans[i].title = `${value >= 0 ? "+" : ""}${value.toFixed(3)}`;
    }
  }

  function describe(pick) {
    const layer = model.layers[pick.layer];
    return `${layer.name} ${layer.states[pick.state]}[${pick.unit}]`;
  }

  function choose(pick) {
    if (pick) {
      const slot = model.stateLayout.find((s) => s.layer === pick.layer && s.state === model.layers[pick.layer].states[pick.state]);
      pick.at = slot.offset + pick.unit;
    }
    colourBy = pick;
    scale = 0;
    if (pick) {
      $("layer").value = String(pick.layer);
      fillStates();
      $("state").value = String(pick.state);
      $("unit").value = String(pick.unit);
      $("readout").textContent = `Colouring by ${describe(pick)}: blue negative, red positive. Hover a character for its value.`;
    }
    colour(0);
  }

  function fillStates() {
    const layer = model.layers[Number($("layer").value)];
    $("state").replaceChildren(...(layer ? layer.states : []).map((name, i) => new Option(name, String(i))));
    $("state").disabled = $("unit").disabled = !layer;
    if (layer) $("unit").max = String(layer.units - 1);
  }

  function pickFromControls() {
    const layer = Number($("layer").value);
    if (layer < 0) {
      colourBy = null;
      colour(0);
      $("readout").textContent = "Plain text: pick a layer to colour by one of its units.";
      return;
    }
    const units = model.layers[layer].units;
    const unit = Math.floor(Number($("unit").value));
    if (!(unit >= 0 && unit < units)) {
      $("readout").textContent = `The unit must be from 0 to ${units - 1}.`;
      $("readout").classList.add("error");
      return;
    }
    $("readout").classList.remove("error");
    choose({ layer, state: Number($("state").value) || 0, unit });
  }

  function hover(event) {
    const span = event.target;
    if (span.parentNode !== text || !colourBy) return;
    const i = Array.prototype.indexOf.call(text.children, span);
    const value = valueOf(written[i]);
    $("readout").textContent = `${JSON.stringify(written[i].char)}, character ${i + 1}: ${describe(colourBy)} = ${value >= 0 ? "+" : ""}${value.toFixed(4)}`;
  }

  // -- the page --------------------------------------------------------------------------

  function defaultPrime() {
    const known = (s) => Array.from(s).every((c) => model.ids.has(c));
    return ["ROMEO:", "The ", "A"].find(known) || model.chars.find((c) => /\w/.test(c)) || model.chars[0];
  }

  function setUp() {
    try {
      model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
    } catch (error) {
      $("about").textContent = `This page has no usable model: ${error.message}`;
      $("about").classList.add("error");
      $("generate").disabled = true;
      return;
    }
    const layers = model.layers;
    document.title = `${model.run}: unfold_rnn`;
    $("about").textContent = `Run ${model.run}: ${layers.length} × ${layers[0].equations} of ${layers[0].units} units, over ${model.chars.length} characters.`;
    $("prime").value = defaultPrime();
    $("length").max = String(Math.floor(KEPT_NUMBERS / model.stateWidth));
    $("layer").replaceChildren(new Option("none", "-1"), ...layers.map((l, i) => new Option(l.name, String(i))));
    $("layer").value = "-1";
    fillStates();
    for (const unit of model.units) {
      const button = document.createElement("button");
      button.type = "button";
      const pick = { layer: unit.layer, state: layers[unit.layer].states.indexOf(unit.state), unit: unit.unit };
      button.textContent = `${unit.label}: ${describe(pick)}`;
      button.title = `r = ${unit.r} with "${unit.label}" over the text \`unfold-rnn inspect\` read`;
      button.addEventListener("click", () => choose(pick));
      $("found").appendChild(button);
    }
    $("controls").addEventListener("submit", start);
    $("stop").addEventListener("click", () => finish());
    $("layer").addEventListener("change", () => {
      fillStates();
      pickFromControls();
    });
    for (const id of ["state", "unit"]) $(id).addEventListener("change", pickFromControls);
    text.addEventListener("mouseover", hover);
    status("Ready.");
  }

  setUp();
})();
