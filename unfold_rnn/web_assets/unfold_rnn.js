// unfold_rnn.js: a trained unfold_rnn model, stepped one character at a time in plain
// JavaScript. The cells follow the equations of unfold_rnn/cells.py and min_cells.py, over
// Keras's weight layout: kernel W (inputs, gates·units), recurrent_kernel U (units,
// gates·units), bias b, the gates' blocks in Keras's order. A classic script with no
// dependencies, so that it runs from file:// as from a server. API: docs/web.md.
(function (root) {
  "use strict";

  const FORMAT = 1;

  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  // log(1 + e^x), without overflow for large x
  const softplus = (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
  // minGRU's and minLSTM's candidate: x + 0.5 for x >= 0, sigmoid(x) below
  const g = (x) => (x >= 0 ? x + 0.5 : sigmoid(x));

  const ACTIVATIONS = {
    tanh: Math.tanh,
    sigmoid,
    relu: (x) => (x > 0 ? x : 0),
    linear: (x) => x,
    hard_sigmoid: (x) => Math.min(1, Math.max(0, x / 6 + 0.5)), // Keras 3: relu6(x + 3) / 6
    softsign: (x) => x / (1 + Math.abs(x)),
  };

  // -- the one operation every layer is made of ------------------------------------------

  // y[j] += sum_i x[i] W[i, from + j], for W row-major with `columns` columns: x times a
  // block of W's columns, added to y. Four rows of W at a time, so that y[j] is read and
  // written once per four multiply-adds, not once per one (docs/experiments.md).
  function addProduct(x, W, columns, from, y) {
    const n = y.length;
    let i = 0;
    for (; i + 4 <= x.length; i += 4) {
      const x0 = x[i];
      const x1 = x[i + 1];
      const x2 = x[i + 2];
      const x3 = x[i + 3];
      const r0 = i * columns + from;
      const r1 = r0 + columns;
      const r2 = r1 + columns;
      const r3 = r2 + columns;
      for (let j = 0; j < n; j++) {
        y[j] += x0 * W[r0 + j] + x1 * W[r1 + j] + x2 * W[r2 + j] + x3 * W[r3 + j];
      }
    }
    for (; i < x.length; i++) {
      const row = i * columns + from; // the rows left over when x's length is not a multiple of 4
      for (let j = 0; j < n; j++) y[j] += x[i] * W[row + j];
    }
    return y;
  }

  // A new vector holding `from`..`from + n` of b, or zeros if there is no bias.
  function biasPart(b, from, n) {
    const y = new Float64Array(n);
    if (b) for (let j = 0; j < n; j++) y[j] = b[from + j];
    return y;
  }

  // x W + b over all of W's columns.
  function affine(x, W, b, columns) {
    return addProduct(x, W, columns, 0, biasPart(b, 0, columns));
  }

  // -- the five cells: each makes step(x, states) -> new states, in the cell's order -----

  const CELLS = {
    // h_t = act(x_t W + h_{t-1} U + b)
    vanilla({ units: H, W, U, b, settings }) {
      const act = ACTIVATIONS[settings.activation];
      return (x, [h]) => {
        const z = addProduct(h, U, H, 0, affine(x, W, b, H));
        return [z.map(act)];
      };
    },

    // z_t = rec_act(x_t W_z + h_{t-1} U_z + b_z),  r_t = rec_act(x_t W_r + h_{t-1} U_r + b_r)
    // reset_after:  h~_t = act(x_t W_h + bx_h + r_t * (h_{t-1} U_h + bh_h))
    // otherwise:    h~_t = act(x_t W_h + (r_t * h_{t-1}) U_h + b_h)
    // h_t = z_t * h_{t-1} + (1 - z_t) * h~_t
    gru({ units: H, W, U, b, settings }) {
      const act = ACTIVATIONS[settings.activation];
      const recAct = ACTIVATIONS[settings.recurrent_activation];
      const after = settings.reset_after; // b is then (2, 3H): input bias, recurrent bias
      return (x, [h]) => {
        const p = affine(x, W, b, 3 * H); // x_t W + b (or + bx)
        const hU = addProduct(h, U, 3 * H, 0, after ? biasPart(b, 3 * H, 3 * H) : new Float64Array(3 * H));
        const z = new Float64Array(H);
        const r = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          z[j] = recAct(p[j] + hU[j]);
          r[j] = recAct(p[H + j] + hU[H + j]);
        }
        let candidate;
        if (after) {
          candidate = p.subarray(2 * H).map((pj, j) => pj + r[j] * hU[2 * H + j]);
        } else {
          const resetH = h.map((hj, j) => r[j] * hj);
          candidate = addProduct(resetH, U, 3 * H, 2 * H, p.slice(2 * H));
        }
        const next = new Float64Array(H);
        for (let j = 0; j < H; j++) next[j] = z[j] * h[j] + (1 - z[j]) * act(candidate[j]);
        return [next];
      };
    },

    // i, f, c~, o = rec_act, rec_act, act, rec_act of (x_t W + h_{t-1} U + b)
    // c_t = f_t * c_{t-1} + i_t * c~_t,   h_t = o_t * act(c_t)
    lstm({ units: H, W, U, b, settings }) {
      const act = ACTIVATIONS[settings.activation];
      const recAct = ACTIVATIONS[settings.recurrent_activation];
      return (x, [h, c]) => {
        const z = addProduct(h, U, 4 * H, 0, affine(x, W, b, 4 * H));
        const nextH = new Float64Array(H);
        const nextC = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const i = recAct(z[j]);
          const f = recAct(z[H + j]);
          const candidate = act(z[2 * H + j]);
          const o = recAct(z[3 * H + j]);
          nextC[j] = f * c[j] + i * candidate;
          nextH[j] = o * act(nextC[j]);
        }
        return [nextH, nextC];
      };
    },

    // z_t = sigmoid(x_t W_z + b_z),  h_t = (1 - z_t) * h_{t-1} + z_t * g(x_t W_h + b_h)
    mingru({ units: H, W, b }) {
      return (x, [h]) => {
        const p = affine(x, W, b, 2 * H);
        const next = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const z = sigmoid(p[j]);
          next[j] = (1 - z) * h[j] + z * g(p[H + j]);
        }
        return [next];
      };
    },

    // f'_t = f_t / (f_t + i_t) = sigmoid(log f_t - log i_t), with log sigmoid(k) = -softplus(-k)
    // h_t = f'_t * h_{t-1} + (1 - f'_t) * g(x_t W_h + b_h)
    minlstm({ units: H, W, b }) {
      return (x, [h]) => {
        const p = affine(x, W, b, 3 * H);
        const next = new Float64Array(H);
        for (let j = 0; j < H; j++) {
          const forget = sigmoid(softplus(-p[H + j]) - softplus(-p[j]));
          next[j] = forget * h[j] + (1 - forget) * g(p[2 * H + j]);
        }
        return [next];
      };
    },
  };

  // -- weights -----------------------------------------------------------------------------

  // The base64 buffer as numbers: float32 as they are, float16 widened.
  function decode(text, dtype) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    if (dtype === "float32") return new Float32Array(bytes.buffer);
    const halves = new Uint16Array(bytes.buffer);
    const values = new Float32Array(halves.length);
    for (let i = 0; i < halves.length; i++) values[i] = fromHalf(halves[i]);
    return values;
  }

  // IEEE 754 half precision: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits.
  function fromHalf(bits) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal
    if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }

  function weights(entries, buffer) {
    const out = {};
    for (const [name, { shape, offset }] of Object.entries(entries || {})) {
      out[name] = buffer.subarray(offset, offset + shape.reduce((a, n) => a * n, 1));
      out[name].shape = shape;
    }
    return out;
  }

  // -- sampling ----------------------------------------------------------------------------

  // A seeded generator of uniform numbers in [0, 1): a Weyl sequence through MurmurHash3's
  // 32-bit finaliser. The same seed gives the same text; Python's draws differ.
  function seeded(seed) {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
    };
  }

  function argmax(values) {
    let best = 0;
    for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
    return best;
  }

  // The next id from logits, as unfold_rnn.sampling picks it: softmax(logits / temperature)
  // among the top-k, then the smallest set reaching top-p; or the most likely (greedy).
  function pick(logits, { temperature = 1, topK = null, topP = null, greedy = false }, random) {
    if (greedy) return argmax(logits);
    const scaled = Array.from(logits, (v) => v / temperature);
    let order = scaled.map((_, j) => j).sort((a, b) => scaled[b] - scaled[a]);
    if (topK) {
      const kth = scaled[order[Math.min(topK, order.length) - 1]];
      order = order.filter((j) => scaled[j] >= kth); // ties with the k-th stay, as in top_k
    }
    const top = scaled[order[0]];
    let probabilities = order.map((j) => Math.exp(scaled[j] - top));
    const total = probabilities.reduce((a, p) => a + p, 0);
    probabilities = probabilities.map((p) => p / total);
    if (topP) {
      let before = 0;
      let keep = 0;
      while (keep < order.length && before < topP) before += probabilities[keep++];
      order = order.slice(0, keep);
      const kept = probabilities.slice(0, keep);
      const mass = kept.reduce((a, p) => a + p, 0);
      probabilities = kept.map((p) => p / mass);
    }
    let u = random();
    for (let k = 0; k < order.length; k++) {
      u -= probabilities[k];
      if (u < 0) return order[k];
    }
    return order[order.length - 1];
  }

  // -- showing a unit ----------------------------------------------------------------------

  // The CSS colour of an activation, as `unfold-rnn inspect` draws it (Karpathy et al. 2015):
  // blue for negative through white at 0 to red for positive, at full strength at ±scale.
  function activationColour(value, scale) {
    const v = Math.max(-1, Math.min(1, value / (scale || 1)));
    const [r, g, b] = v >= 0 ? [0.84, 0.19, 0.15] : [0.17, 0.4, 0.74];
    const w = Math.abs(v);
    return `rgb(${[r, g, b].map((c) => Math.round(255 * (1 + w * (c - 1)))).join(",")})`;
  }

  // -- the model ---------------------------------------------------------------------------

  class Model {
    constructor(data) {
      if (!data || data.format !== FORMAT) {
        throw new Error(`These weights are not of format ${FORMAT}: export the run again with this unfold_rnn.`);
      }
      const buffer = decode(data.data, data.dtype);
      this.kind = data.kind;
      this.run = data.run;
      this.units = data.units || [];
      this.layers = data.layers.map((layer) => {
        const w = weights(layer.weights, buffer);
        const make = CELLS[layer.equations];
        if (!make) throw new Error(`${layer.name} follows equations this page does not know: ${layer.equations}`);
        return {
          name: layer.name,
          equations: layer.equations,
          units: layer.units,
          states: layer.states,
          step: make({ units: layer.units, W: w.kernel, U: w.recurrent_kernel, b: w.bias, settings: layer.settings }),
        };
      });
      // Where each state sits in a row of all of them (flatStates): layer after layer, each
      // layer's states in its cell's order.
      this.stateLayout = [];
      let offset = 0;
      this.layers.forEach((layer, l) =>
        layer.states.forEach((state) => {
          this.stateLayout.push({ layer: l, state, offset, size: layer.units });
          offset += layer.units;
        }),
      );
      this.stateWidth = offset;
      const head = weights(data.head.weights, buffer);
      this.head = { ...head, activation: ACTIVATIONS[data.head.activation], size: head.kernel.shape[1] };
      if (data.kind === "language_model") {
        this.chars = data.vocab;
        this.ids = new Map(this.chars.map((c, i) => [c, i]));
        this.embedding = weights({ e: data.embedding }, buffer).e;
      } else {
        this.bits = data.bits;
      }
    }

    // Zero states, as every text starts: per layer, its states in its cell's order.
    initialStates() {
      return this.layers.map((layer) => layer.states.map(() => new Float64Array(layer.units)));
    }

    // One input vector through the layers and the head: { output, states }.
    advance(x, states) {
      const next = [];
      for (let l = 0; l < this.layers.length; l++) {
        next.push(this.layers[l].step(x, states[l]));
        x = next[l][0]; // h_t feeds the layer above
      }
      const { kernel, bias, size, activation } = this.head;
      const output = affine(x, kernel, bias, size).map(activation);
      return { output, states: next };
    }

    // One character (its id, or itself) of a language model: { logits, states }.
    step(char, states) {
      const id = typeof char === "number" ? char : this.encode(char)[0];
      const E = this.embedding.shape[1];
      const { output, states: next } = this.advance(this.embedding.subarray(id * E, (id + 1) * E), states);
      return { logits: output, states: next };
    }

    // The ids of a text; unknown characters are an error that names them.
    encode(text) {
      const chars = Array.from(text);
      const unknown = [...new Set(chars.filter((c) => !this.ids.has(c)))];
      if (unknown.length) {
        throw new Error(`The model does not know ${unknown.map((c) => JSON.stringify(c)).join(", ")}: use characters of its text.`);
      }
      return chars.map((c) => this.ids.get(c));
    }

    // Reads `prime`, then writes up to `length` characters; yields every character read or
    // written, as { char, id, prime, logits, states }, with the states after reading it.
    *generate(prime, { length = Infinity, seed = 0, ...options } = {}) {
      const ids = this.encode(prime);
      if (!ids.length) throw new Error("The prime must have at least one character to start from.");
      if (!(options.greedy || (options.temperature ?? 1) > 0)) throw new Error("The temperature must be > 0.");
      const random = seeded(seed);
      let states = this.initialStates();
      let logits;
      for (const id of ids) {
        ({ logits, states } = this.step(id, states));
        yield { char: this.chars[id], id, prime: true, logits, states };
      }
      for (let n = 0; n < length; n++) {
        const id = pick(logits, options, random);
        ({ logits, states } = this.step(id, states));
        yield { char: this.chars[id], id, prime: false, logits, states };
      }
    }

    // An adder's sum of two whole numbers, bit by bit from the least significant: yields
    // { a, b, bit, probability, states } for each of the sum's bits.
    *add(a, b) {
      let states = this.initialStates();
      const width = Math.max(a.toString(2).length, b.toString(2).length) + 1;
      for (let t = 0; t < width; t++) {
        const x = Float64Array.of(Math.floor(a / 2 ** t) % 2, Math.floor(b / 2 ** t) % 2);
        const { output, states: next } = this.advance(x, states);
        states = next;
        yield { a: x[0], b: x[1], bit: output[0] > 0.5 ? 1 : 0, probability: output[0], states };
      }
    }

    // The states as one row (into `row`, if given), in `stateLayout`: the layout of the
    // SavedModel's `step` signature.
    flatStates(states, row = new Float64Array(this.stateWidth)) {
      let offset = 0;
      for (const layer of states) {
        for (const state of layer) {
          row.set(state, offset);
          offset += state.length;
        }
      }
      return row;
    }
  }

  // `data` is what weights.js sets as UNFOLD_RNN_DATA.
  function load(data) {
    return new Model(data);
  }

  // Loads a weights.js by a <script> tag (which works from file:// too), then the model.
  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => {
        const data = root.UNFOLD_RNN_DATA;
        delete root.UNFOLD_RNN_DATA;
        try {
          resolve(load(data));
        } catch (error) {
          reject(error);
        }
      };
      script.onerror = () => reject(new Error(`Could not load ${url}.`));
      document.head.appendChild(script);
    });
  }

  root.UnfoldRNN = { load, loadScript, pick, seeded, activationColour, CELLS, ACTIVATIONS };
})(globalThis);
