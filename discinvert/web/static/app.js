// The discinvert page: every picture and number comes from the JSON API under /api/ (docs/web.md).
// Its URLs are relative to the page: a GAN of the picker served under /gan/NAME/ has its API there.
//
// One rule keeps the page honest: every panel shows only what belongs to the current picture.
// Choosing a picture (or having it refused) first clears every panel, stops a running refinement
// and drops the answers still on their way for the previous picture (`state.generation`).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  generation: 0,      // bumped for every new picture: answers for an older one are dropped
  picture: null,      // () => FormData naming the current picture (upload or example); null: none
  code: null,         // feed-forward code of the current picture
  refinedCode: null,  // its refined code, when the latest refinement ran to its end (a new one drops it)
  refining: null,     // the running refinement's AbortController
  editSeq: 0,         // only the latest edit's answer is shown
  editedImage: null,  // the latest edit's picture (PNG data URL), for its download
  pathSeq: 0,         // only the latest interpolation's answer is shown
  other: null,        // () => FormData naming the interpolation's second picture
};
const PICTURE_BUTTONS = ["refine-go", "edit-reset", "download-code", "interpolate-go"];

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

// ---------------------------------------------------------------------------------------------- the current picture
function clearPath() {
  $("path").textContent = "";
  $("path-view").removeAttribute("src");
  $("path-caption").textContent = "";
  $("path-slider").oninput = null;
  $("path-box").hidden = true;
  $("path-status").hidden = true;
}

// Forget the current picture: every panel empty, every button that needs a picture disabled.
function clearPicture() {
  stopRefine();
  state.generation += 1;
  state.editSeq += 1;  // an edit still on its way belongs to the old picture
  state.picture = state.code = state.refinedCode = state.editedImage = null;
  for (const id of ["original", "reconstruction", "refined", "edited"]) $(id).removeAttribute("src");
  delete $("edited").dataset.code;
  $("reconstruction-caption").textContent = "feed-forward reconstruction";
  $("refined-caption").textContent = "refined (on request)";
  $("edited-caption").textContent = "edited";
  showEditWarning("");
  $("refine-status").textContent = "";
  $("notes").textContent = "";
  for (const id of [...PICTURE_BUTTONS, "refine-stop", "download-image"]) $(id).disabled = true;
  for (const input of document.querySelectorAll("input.direction")) {
    input.value = "0";
    input.nextElementSibling.textContent = "0.0";
    input.disabled = true;
  }
  clearPath();
}

async function invert(picture) {
  showError("");
  clearPicture();
  const generation = state.generation;
  $("reconstruction-caption").textContent = "encoding…";
  try {
    const answer = await apiJSON("api/reconstruct", { method: "POST", body: picture() });
    if (generation !== state.generation) return;  // another picture was chosen meanwhile
    state.picture = picture;
    state.code = answer.code;
    $("original").src = answer.original;
    $("reconstruction").src = answer.reconstruction;
    $("reconstruction-caption").textContent =
      `feed-forward (${answer.iterations} step network${answer.iterations === 1 ? "" : "s"}): ${quality(answer)} · ` +
      `${ms(answer.seconds)} (round trip ${ms(answer.roundTrip)})`;
    $("notes").textContent = answer.notes.length ? `Done to the picture: ${answer.notes.join("; ")}.` : "";
    for (const id of PICTURE_BUTTONS) $(id).disabled = false;
    for (const input of document.querySelectorAll("input.direction")) input.disabled = false;
    updateEdit();
  } catch (error) {
    if (generation !== state.generation) return;
    $("reconstruction-caption").textContent = "feed-forward reconstruction";
    showError(error.message);
  }
}

// ---------------------------------------------------------------------------------------------- refinement
function stopRefine() {
  const running = state.refining;
  if (!running) return;
  state.refining = null;
  running.abort();  // closes the stream: the server ends the refinement at its next step
  $("refine-stop").disabled = true;
  $("refine-go").disabled = !state.picture;
}

async function refine() {
  if (!state.picture || state.refining) return;
  showError("");
  const generation = state.generation;
  const controller = new AbortController();
  state.refining = controller;
  const form = state.picture();
  const steps = Number($("refine-steps").value);
  form.append("steps", String(steps));
  form.append("every", String(Math.max(1, Math.floor(steps / 25))));
  $("refine-go").disabled = true;
  $("refine-stop").disabled = false;
  $("refine-status").textContent = "refining…";
  // Until this refinement ends, the edits, the code download and the path use the feed-forward code:
  // a stopped or failed run must not leave them on an earlier run's code while the panel shows this one.
  $("refined").removeAttribute("src");
  $("refined-caption").textContent = "refined (on request)";
  if (state.refinedCode) { state.refinedCode = null; updateEdit(); }
  let last = null;
  try {
    const { response } = await api("api/refine", { method: "POST", body: form, signal: controller.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || controller.signal.aborted) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        if (event.error) throw new Error(event.error);
        last = event;
        $("refined").src = event.reconstruction;
        const text = `step ${event.step}/${event.steps}: ${quality(event)} · ${ms(event.seconds)}`;
        $("refine-status").textContent = event.done ? `done, ${text}` : text;
        $("refined-caption").textContent = `refined, ${text}`;
        if (event.done) { state.refinedCode = event.code; updateEdit(); }
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) showError(error.message);
  } finally {
    if (state.refining === controller) {
      state.refining = null;
      $("refine-stop").disabled = true;
      $("refine-go").disabled = !state.picture;
    }
    if (controller.signal.aborted && generation === state.generation) {  // Stop, not a new picture
      const at = last ? `step ${last.step}/${last.steps}` : "its start";
      $("refine-status").textContent = `stopped at ${at}; the edits use the feed-forward code`;
      if (last) $("refined-caption").textContent = `refined, stopped at ${at}: ${quality(last)}`;
    } else if (!(last && last.done) && generation === state.generation) {  // failed (the error says why)
      const at = last ? `step ${last.step}/${last.steps}` : "its start";
      $("refine-status").textContent = last ? `failed at ${at}; the edits use the feed-forward code` : "";
      if (last) $("refined-caption").textContent = `refined, failed at ${at}: ${quality(last)}`;
    }
  }
}

// ---------------------------------------------------------------------------------------------- edits
const GROUP_TEXT = {
  labels: "labels: learned from labelled pictures (a linear classifier's normal; hover a name for its held-out accuracy)",
  sefa: "sefa: found from G alone (closed-form factorisation of the layer that takes the code), most visible first",
  pca: "pca: found from G alone (principal components, GANSpace), most visible first",
  vectors: "vectors: named vectors from a file",
};

function sliderTitle(name, group, details) {
  const parts = [`${name} (${group.method}${group.space ? ", space " + group.space : ""})`];
  const d = details || {};
  if (typeof d.holdout_balanced_accuracy === "number") {
    parts.push(`held-out balanced accuracy ${d.holdout_balanced_accuracy.toFixed(3)} ` +
      `(${d.holdout_positives} with and ${d.holdout_negatives} without held out; ${d.positives} + ${d.negatives} pictures)`);
  }
  if (typeof d.image_change === "number") parts.push(`image change ${d.image_change.toFixed(3)} at amount 1`);
  return parts.join(" · ");
}

// One slider per direction, in groups labelled by how they were made (info.direction_groups).
function buildSliders(info) {
  const box = $("sliders");
  const kept = {};  // a rebuild (a slider learned) keeps the amounts already set
  for (const input of document.querySelectorAll("input.direction")) kept[input.dataset.name] = input.value;
  box.textContent = "";
  const groups = info.direction_groups || [];
  if (!groups.length) {
    box.textContent = "No edit directions are served (start with a zoo GAN, --labelled or --directions, " +
      "or learn one below).";
    return;
  }
  const strength = info.limits.max_strength;
  for (const group of groups) {
    const heading = document.createElement("p");
    heading.className = "group quiet";
    const units = group.amounts === "spreads" ? "amounts in spreads of the prior" : "amounts in units of each vector";
    heading.textContent = `${GROUP_TEXT[group.method] || group.method}${group.learned_here ? ", learned on this page" : ""} · ${units}`;
    heading.dataset.method = group.method;
    box.append(heading);
    const range = group.amounts === "spreads" ? strength : Math.min(3, strength);
    for (const name of group.names) {
      const label = document.createElement("label");
      const span = document.createElement("span");
      span.className = "name";
      span.textContent = name;
      span.title = sliderTitle(name, group, group.details[name]);
      const input = document.createElement("input");
      input.type = "range";
      input.min = String(-range);
      input.max = String(range);
      input.step = "0.1";
      input.value = kept[name] || "0";
      input.className = "direction";
      input.disabled = !state.picture;  // a slider moves a picture's code: none yet
      input.dataset.name = name;
      input.dataset.method = group.method;
      const output = document.createElement("output");
      output.textContent = Number(input.value).toFixed(1);
      input.addEventListener("input", () => { output.textContent = Number(input.value).toFixed(1); updateEdit(); });
      label.append(span, input, output);
      box.append(label);
    }
  }
}

function showEditWarning(message) {
  const box = $("edit-warning");
  box.textContent = message || "";
  box.hidden = !message;
}

// Upload pictures with and without a label: the server learns a slider from their codes.
async function learnSlider() {
  const name = $("learn-name").value.trim();
  const form = new FormData();
  form.append("name", name);
  for (const file of $("learn-with").files) form.append("with", file, file.name);
  for (const file of $("learn-without").files) form.append("without", file, file.name);
  const status = $("learn-status");
  status.textContent = "learning…";
  $("learn-go").disabled = true;
  try {
    const answer = await apiJSON("api/directions", { method: "POST", body: form });
    const accuracy = answer.holdout_balanced_accuracy === null ? "not measured" :
      answer.holdout_balanced_accuracy.toFixed(3);
    status.textContent = `learned "${answer.name}" from ${answer.positives} pictures with it and ${answer.negatives} ` +
      `without: held-out balanced accuracy ${accuracy} (${answer.holdout_positives} + ${answer.holdout_negatives} ` +
      `held out; 0.5 is chance) · ${ms(answer.seconds)}`;
    const info = await apiJSON("api/info");
    state.info = info;
    buildSliders(info);
  } catch (error) {
    status.textContent = `not learned: ${error.message}`;
  } finally {
    $("learn-go").disabled = false;
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
    const answer = await postJSON("api/edit", { code, amounts });
    if (seq !== state.editSeq) return;  // a later edit, or another picture, is on its way
    $("edited").src = answer.image;
    $("edited").dataset.code = JSON.stringify(answer.code);
    state.editedImage = answer.image;
    const moved = Object.entries(amounts).map(([n, a]) => `${n} ${a > 0 ? "+" : ""}${a}`).join(", ") || "no edit";
    $("edited-caption").textContent = `${moved} · ${ms(answer.seconds)} (round trip ${ms(answer.roundTrip)})`;
    showEditWarning(answer.warning);
    $("download-image").disabled = false;
  } catch (error) {
    if (seq === state.editSeq) { showEditWarning(""); showError(error.message); }
  }
}

function save(url, name) {
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
}

async function downloadCode() {
  const code = $("edited").dataset.code ? JSON.parse($("edited").dataset.code) : (state.refinedCode || state.code);
  if (!code) return;
  try {
    const { response } = await api("api/code.npy", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }) });
    const url = URL.createObjectURL(await response.blob());
    save(url, "code.npy");
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (error) {
    showError(error.message);
  }
}

function downloadImage() {
  if (state.editedImage) save(state.editedImage, "edited.png");
}

// ---------------------------------------------------------------------------------------------- interpolation
async function interpolatePath() {
  const code = state.refinedCode || state.code;
  if (!code) return;
  showError("");
  clearPath();
  const generation = state.generation;
  const seq = ++state.pathSeq;  // a click while an earlier path is on its way: only this one is shown
  const current = () => seq === state.pathSeq && generation === state.generation;
  const status = $("path-status");
  status.textContent = "interpolating…";
  status.hidden = false;
  const other = state.other || exampleForm(Number($("other-index").value));
  try {
    const target = await apiJSON("api/reconstruct", { method: "POST", body: other() });
    if (!current()) return;
    const answer = await postJSON("api/interpolate", {
      code_a: code, code_b: target.code, frames: Number($("frames").value), method: $("method").value });
    if (!current()) return;  // the path of a picture no longer shown, or of an earlier click
    const strip = $("path");
    strip.textContent = "";
    for (const [i, src] of answer.images.entries()) {
      const img = document.createElement("img");
      img.src = src;
      img.alt = `frame ${i}`;
      strip.append(img);
    }
    const last = answer.images.length - 1;
    const timing = `${answer.images.length} frames in ${ms(answer.seconds)}`;
    const slider = $("path-slider");
    slider.max = String(last);
    slider.value = "0";
    slider.oninput = () => {
      $("path-view").src = answer.images[Number(slider.value)];
      $("path-caption").textContent = `frame ${slider.value} of ${last} · ${timing}`;
    };
    slider.oninput();
    status.hidden = true;
    $("path-box").hidden = false;
  } catch (error) {
    if (!current()) return;
    clearPath();
    showError(error.message);
  }
}

// ---------------------------------------------------------------------------------------------- examples
// Two full rows of thumbnails, however wide the window (no orphan on a row of its own).
function layoutExamples() {
  const count = state.info ? state.info.examples : 0;
  const strip = $("examples");
  if (!count) return;
  const columns = Math.max(1, getComputedStyle(strip).gridTemplateColumns.split(" ").length);
  const shown = count <= columns ? count : Math.floor(Math.min(count, 2 * columns) / columns) * columns;
  const labels = state.info.example_labels;
  while (strip.children.length > shown) strip.lastChild.remove();
  for (let i = strip.children.length; i < shown; i++) {
    const img = document.createElement("img");
    img.src = `api/examples/${i}.png`;
    img.alt = labels ? `example ${i}: ${labels[i]}` : `example ${i}`;
    img.title = img.alt;
    img.addEventListener("click", () => { $("example-index").value = String(i); pickExample(i); });
    strip.append(img);
  }
  const total = count.toLocaleString("en-US");
  $("examples-count").textContent = shown === count
    ? `${total} example picture${count === 1 ? "" : "s"}.`
    : `The first ${shown} of ${total} example pictures: type an index from 0 to ${count - 1}, or press Random.`;
}

function buildExamples(count) {
  $("example-index").max = String(Math.max(0, count - 1));
  $("other-index").max = String(Math.max(0, count - 1));
  if (!count) {
    $("examples").textContent = "No example pictures are served: upload one.";
    for (const id of ["example-go", "example-random"]) $(id).disabled = true;
    return;
  }
  layoutExamples();
  window.addEventListener("resize", layoutExamples);
}

function pickExample(index) {
  $("upload").value = "";  // the file chooser no longer names the current picture
  invert(exampleForm(index));
}

// The picker of GANs: each GAN has a page of its own (a new page starts with nothing of the last one's).
function buildPicker(listing) {
  const select = $("gan");
  for (const [i, gan] of listing.gans.entries()) {
    const option = document.createElement("option");
    option.value = gan.url;
    option.textContent = gan.name;
    option.title = gan.description;
    option.selected = i === listing.current;
    select.append(option);
  }
  $("gan-pick").hidden = listing.gans.length < 2;
  select.addEventListener("change", () => { window.location.assign(select.value); });
}

async function start() {
  try {
    buildPicker(await apiJSON("api/gans"));
    const info = await apiJSON("api/info");
    state.info = info;
    $("description").textContent = info.description;
    const layer = Array.isArray(info.feature_layer) ? info.feature_layer.join(", ") : info.feature_layer;
    const reads = info.feature_source === "pixels" ? "generator only (no D)" : `D's layer ${layer}`;
    $("facts").textContent = `images ${info.image_shape.join("×")} · codes ${info.latent_shape.join("×")} · ` +
      `${reads} · ${info.iterations} step network(s) · discinvert ${info.version}`;
    $("refine-steps").max = String(info.limits.max_refine_steps);
    $("frames").max = String(info.limits.max_frames);
    buildExamples(info.examples);
    buildSliders(info);
    $("learn-min").textContent = String(info.limits.min_labelled);
  } catch (error) {
    showError(`cannot reach the server: ${error.message}`);
  }
}

$("example-go").addEventListener("click", () => pickExample(Number($("example-index").value)));
$("example-random").addEventListener("click", () => {
  const index = Math.floor(Math.random() * state.info.examples);
  $("example-index").value = String(index);
  pickExample(index);
});
$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) { clearPicture(); return; }
  await invert(uploadForm(file));
  if (!state.picture) $("upload").value = "";  // refused: the chooser must not name a file that is not shown
});
$("other-upload").addEventListener("change", () => {
  const file = $("other-upload").files[0];
  state.other = file ? uploadForm(file) : null;
});
$("other-index").addEventListener("input", () => { state.other = null; $("other-upload").value = ""; });
$("refine-go").addEventListener("click", refine);
$("refine-stop").addEventListener("click", stopRefine);
$("edit-reset").addEventListener("click", resetSliders);
$("download-code").addEventListener("click", downloadCode);
$("download-image").addEventListener("click", downloadImage);
$("interpolate-go").addEventListener("click", interpolatePath);
$("learn-go").addEventListener("click", learnSlider);
start();
