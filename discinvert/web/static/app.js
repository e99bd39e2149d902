// The discinvert page: every picture and number comes from the JSON API under /api/ (docs/web.md).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  picture: null,      // () => FormData naming the current picture (upload or example)
  code: null,         // feed-forward code of the current picture
  refinedCode: null,  // its refined code, when refined
  editSeq: 0,         // only the latest edit's answer is shown
  other: null,        // () => FormData naming the interpolation's second picture
};

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function ms(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(0)} ms` : `${seconds.toFixed(2)} s`;
}

function quality(answer) {
  const psnr = answer.psnr === null ? "∞" : answer.psnr.toFixed(2);
  return `PSNR ${psnr} dB · SSIM ${answer.ssim.toFixed(3)}`;
}

// fetch that turns the API's {"error": ...} answers into exceptions with its message.
async function api(path, options) {
  const started = performance.now();
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return { response, roundTrip: (performance.now() - started) / 1000 };
}

async function apiJSON(path, options) {
  const { response, roundTrip } = await api(path, options);
  const answer = await response.json();
  answer.roundTrip = roundTrip;
  return answer;
}

function postJSON(path, body) {
  return apiJSON(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function exampleForm(index) {
  return () => { const form = new FormData(); form.append("example", String(index)); return form; };
}

function uploadForm(file) {
  return () => { const form = new FormData(); form.append("image", file, file.name); return form; };
}

async function invert(picture) {
  showError("");
  state.picture = picture;
  $("reconstruction-caption").textContent = "encoding…";
  try {
    const answer = await apiJSON("/api/reconstruct", { method: "POST", body: picture() });
    state.code = answer.code;
    state.refinedCode = null;
    $("original").src = answer.original;
    $("reconstruction").src = answer.reconstruction;
    $("reconstruction-caption").textContent =
      `feed-forward (${answer.iterations} step network${answer.iterations === 1 ? "" : "s"}): ${quality(answer)} · ` +
      `${ms(answer.seconds)} (round trip ${ms(answer.roundTrip)})`;
    $("refined").removeAttribute("src");
    $("refined-caption").textContent = "refined (on request)";
    $("refine-status").textContent = "";
    $("notes").textContent = answer.notes.length ? `Done to the picture: ${answer.notes.join("; ")}.` : "";
    for (const id of ["refine-go", "edit-reset", "download-code", "interpolate-go"]) $(id).disabled = false;
    resetSliders();
  } catch (error) {
    $("reconstruction-caption").textContent = "feed-forward reconstruction";
    showError(error.message);
  }
}

async function refine() {
  showError("");
  const form = state.picture();
  const steps = Number($("refine-steps").value);
  form.append("steps", String(steps));
  form.append("every", String(Math.max(1, Math.floor(steps / 25))));
  $("refine-go").disabled = true;
  try {
    const { response } = await api("/api/refine", { method: "POST", body: form });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        if (event.error) throw new Error(event.error);
        $("refined").src = event.reconstruction;
        const text = `step ${event.step}/${event.steps}: ${quality(event)} · ${ms(event.seconds)}`;
        $("refine-status").textContent = event.done ? `done, ${text}` : text;
        $("refined-caption").textContent = `refined, ${text}`;
        if (event.done) { state.refinedCode = event.code; updateEdit(); }
      }
    }
  } catch (error) {
    showError(error.message);
  } finally {
    $("refine-go").disabled = false;
  }
}

function buildSliders(names) {
  const box = $("sliders");
  box.textContent = "";
  if (!names.length) {
    box.textContent = "No edit directions are served (start with a zoo GAN, --labelled or --directions).";
    return;
  }
  for (const name of names) {
    const label = document.createElement("label");
    const span = document.createElement("span");
    span.className = "name";
    span.textContent = name;
    span.title = name;
    const input = document.createElement("input");
    input.type = "range";
    input.min = "-3";
    input.max = "3";
    input.step = "0.1";
    input.value = "0";
    input.className = "direction";
    input.dataset.name = name;
    const output = document.createElement("output");
    output.textContent = "0.0";
    input.addEventListener("input", () => { output.textContent = Number(input.value).toFixed(1); updateEdit(); });
    label.append(span, input, output);
    box.append(label);
  }
}

function resetSliders() {
  for (const input of document.querySelectorAll("input.direction")) {
    input.value = "0";
    input.nextElementSibling.textContent = "0.0";
  }
  updateEdit();
}

async function updateEdit() {
  const code = state.refinedCode || state.code;
  if (!code) return;
  const amounts = {};
  for (const input of document.querySelectorAll("input.direction")) {
    if (Number(input.value) !== 0) amounts[input.dataset.name] = Number(input.value);
  }
  const seq = ++state.editSeq;
  try {
    const answer = await postJSON("/api/edit", { code, amounts });
    if (seq !== state.editSeq) return;  // a later edit is on its way
    $("edited").src = answer.image;
    $("edited").dataset.code = JSON.stringify(answer.code);
    const moved = Object.entries(amounts).map(([n, a]) => `${n} ${a > 0 ? "+" : ""}${a}`).join(", ") || "no edit";
    $("edited-caption").textContent = `${moved} · ${ms(answer.seconds)} (round trip ${ms(answer.roundTrip)})`;
    const link = $("download-image");
    link.href = answer.image;
    link.classList.remove("disabled");
    link.removeAttribute("aria-disabled");
  } catch (error) {
    if (seq === state.editSeq) showError(error.message);
  }
}

async function downloadCode() {
  const code = $("edited").dataset.code ? JSON.parse($("edited").dataset.code) : (state.refinedCode || state.code);
  try {
    const { response } = await api("/api/code.npy", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }) });
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = "code.npy";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (error) {
    showError(error.message);
  }
}

async function interpolatePath() {
  showError("");
  const other = state.other || exampleForm(Number($("other-index").value));
  try {
    const target = await apiJSON("/api/reconstruct", { method: "POST", body: other() });
    const answer = await postJSON("/api/interpolate", {
      code_a: state.refinedCode || state.code, code_b: target.code,
      frames: Number($("frames").value), method: $("method").value });
    const strip = $("path");
    strip.textContent = "";
    for (const [i, src] of answer.images.entries()) {
      const img = document.createElement("img");
      img.src = src;
      img.alt = `frame ${i}`;
      strip.append(img);
    }
    const slider = $("path-slider");
    slider.max = String(answer.images.length - 1);
    slider.value = "0";
    slider.disabled = false;
    slider.oninput = () => {
      $("path-view").src = answer.images[Number(slider.value)];
      $("path-caption").textContent = `frame ${slider.value} of ${answer.images.length - 1}`;
    };
    slider.oninput();
    $("path-caption").textContent += ` · ${answer.images.length} frames in ${ms(answer.seconds)}`;
  } catch (error) {
    showError(error.message);
  }
}

function buildExamples(count, labels) {
  const strip = $("examples");
  strip.textContent = "";
  $("example-index").max = String(Math.max(0, count - 1));
  $("other-index").max = String(Math.max(0, count - 1));
  if (!count) {
    strip.textContent = "No example pictures are served: upload one.";
    for (const id of ["example-go", "example-random"]) $(id).disabled = true;
    return;
  }
  for (let i = 0; i < Math.min(count, 24); i++) {
    const img = document.createElement("img");
    img.src = `/api/examples/${i}.png`;
    img.alt = labels ? `example ${i}: ${labels[i]}` : `example ${i}`;
    img.title = img.alt;
    img.addEventListener("click", () => { $("example-index").value = String(i); invert(exampleForm(i)); });
    strip.append(img);
  }
}

async function start() {
  try {
    const info = await apiJSON("/api/info");
    state.info = info;
    $("description").textContent = info.description;
    const layer = Array.isArray(info.feature_layer) ? info.feature_layer.join(", ") : info.feature_layer;
    $("facts").textContent = `images ${info.image_shape.join("×")} · codes ${info.latent_shape.join("×")} · ` +
      `D's layer ${layer} · ${info.iterations} step network(s) · discinvert ${info.version}`;
    $("refine-steps").max = String(info.limits.max_refine_steps);
    $("frames").max = String(info.limits.max_frames);
    buildExamples(info.examples, info.example_labels);
    buildSliders(info.directions);
  } catch (error) {
    showError(`cannot reach the server: ${error.message}`);
  }
}

$("example-go").addEventListener("click", () => invert(exampleForm(Number($("example-index").value))));
$("example-random").addEventListener("click", () => {
  const index = Math.floor(Math.random() * state.info.examples);
  $("example-index").value = String(index);
  invert(exampleForm(index));
});
$("upload").addEventListener("change", () => { const file = $("upload").files[0]; if (file) invert(uploadForm(file)); });
$("other-upload").addEventListener("change", () => {
  const file = $("other-upload").files[0];
  state.other = file ? uploadForm(file) : null;
});
$("other-index").addEventListener("input", () => { state.other = null; });
$("refine-go").addEventListener("click", refine);
$("edit-reset").addEventListener("click", resetSliders);
$("download-code").addEventListener("click", downloadCode);
$("interpolate-go").addEventListener("click", interpolatePath);
start();
