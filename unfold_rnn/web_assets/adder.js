// adder.js: the adder's page. The network writes the sum one bit per step, shown at a pace
// a reader can follow, with the carry unit's activation under each bit.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const PACE_MS = 300; // between bits
  const LARGEST = 2 ** 40; // whole numbers stay exact in doubles well beyond this
  let model;
  let timer = null;

  function status(message, error = false) {
    $("status").textContent = message;
    $("status").classList.toggle("error", error);
  }

  function cell(row, content, className) {
    const td = row.insertCell(1); // columns fill from the right: least significant bit last
    td.textContent = content;
    if (className) td.className = className;
    return td;
  }

  function add(event) {
    event.preventDefault();
    clearTimeout(timer);
    const a = Number($("a").value);
    const b = Number($("b").value);
    if (![a, b].every((n) => Number.isInteger(n) && n >= 0 && n < LARGEST)) {
      status(`a and b must be whole numbers from 0 to ${LARGEST - 1}.`, true);
      return;
    }
    const carry = model.units[0];
    const stateIndex = carry ? model.layers[carry.layer].states.indexOf(carry.state) : -1;
    const steps = [...model.add(a, b)];
    const values = steps.map((s) => (carry ? s.states[carry.layer][stateIndex][carry.unit] : 0));
    const scale = Math.max(...values.map(Math.abs));
    const truth = (a + b).toString(2).padStart(steps.length, "0");

    const table = $("sum");
    table.replaceChildren();
    const labels = ["a", "b", "sum (network)", carry ? `carry unit ${model.layers[carry.layer].name} ${carry.state}[${carry.unit}]` : "no carry unit"];
    const rows = labels.map((label, i) => {
      const row = table.insertRow();
      row.insertCell(0).outerHTML = `<th>${label}</th>`;
      if (i === 3) row.className = "carry";
      return row;
    });
    let t = 0;
    let written = 0;
    const next = () => {
      const s = steps[t];
      cell(rows[0], String(s.a));
      cell(rows[1], String(s.b));
      const right = String(s.bit) === truth[truth.length - 1 - t];
      cell(rows[2], String(s.bit), right ? "" : "wrong").title = `p(1) = ${s.probability.toFixed(3)}`;
      const td = cell(rows[3], `${values[t] >= 0 ? "+" : ""}${values[t].toFixed(2)}`);
      td.style.background = UnfoldRNN.activationColour(values[t], scale);
      written += s.bit * 2 ** t;
      t += 1;
      if (t < steps.length) {
        status(`Bit ${t} of ${steps.length}…`);
        timer = setTimeout(next, PACE_MS);
      } else {
        const verdict = written === a + b ? "right" : `wrong: ${a} + ${b} = ${a + b}`;
        status(`${a} + ${b}: the network wrote ${written}, ${verdict}.`);
      }
    };
    next();
  }

  function setUp() {
    try {
      model = UnfoldRNN.load(globalThis.UNFOLD_RNN_DATA);
    } catch (error) {
      $("about").textContent = `This page has no usable model: ${error.message}`;
      $("add").disabled = true;
      return;
    }
    const layer = model.layers[0];
    const carry = model.units[0];
    document.title = `${model.run}: unfold_rnn`;
    $("about").textContent =
      `Run ${model.run}: one ${layer.equations} layer of ${layer.units} units, trained on sums of ${model.bits} bits.` +
      (carry ? ` Its unit ${layer.states.length > 1 ? carry.state : "h"}[${carry.unit}] tracks the carry (r = ${carry.r}).` : "");
    $("controls").addEventListener("submit", add);
    status("Ready.");
  }

  setUp();
})();
