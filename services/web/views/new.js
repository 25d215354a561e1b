// New run: a spec (JSON) submitted to POST /jobs, from a few starting points.
import { post } from "../api.js";
import { h } from "../dom.js";
import { errorText } from "../shell.js";

const PRESETS = {
  "seed example": {steps: 100},
  moons: {model: {layers: [16, 16, 1]}, data: {kind: "moons", n_samples: 100, noise: 0.1}, loss: "hinge",
          l2: 0.0001, optimizer: {name: "sgd", lr: 0.5, schedule: "linear", final_lr: 0.05}, steps: 100},
  circles: {model: {layers: [8, 8, 1]}, data: {kind: "circles", n_samples: 100}, loss: "bce",
            optimizer: {name: "adam", lr: 0.05}, steps: 150},
  "spirals (3 classes)": {model: {layers: [24, 24, 3], activations: ["relu", "relu", "linear"]},
                          data: {kind: "spirals", n_samples: 150, classes: 3}, loss: "softmax_ce",
                          optimizer: {name: "adam", lr: 0.02}, steps: 200},
};

// What is typed is kept for the tab (sessionStorage): leaving the view, or giving a key after a 401 (which
// starts the view again), no longer throws a spec away for the preset.
const DRAFT = "mgs.newRunDraft";

export function renderNew(main) {
  const spec = h("textarea", {class: "spec", spellcheck: false, "aria-label": "spec",
                              oninput: () => sessionStorage.setItem(DRAFT, spec.value)},
                 sessionStorage.getItem(DRAFT) ?? JSON.stringify(PRESETS.moons, null, 2));
  const result = h("p", {class: "error"});
  const submit = h("button", {class: "primary", type: "submit"}, "Submit");
  const form = h("form", {class: "new-run", onsubmit: async (event) => {
    event.preventDefault();
    result.textContent = "";
    let body;
    try { body = JSON.parse(spec.value); } catch (error) { result.textContent = `Not JSON: ${error.message}`; return; }
    submit.disabled = true;
    try {
      const created = await post("/jobs", body);
      location.hash = `#/runs/${created.id}`;
    } catch (error) {
      result.textContent = errorText(error);
    } finally {
      submit.disabled = false;
    }
  }}, spec, h("div", {class: "toolbar"}, submit, result));
  main.append(h("h1", {}, "New run"),
    h("p", {}, "A training spec as JSON; every field has a default (", h("a", {href: "/docs#/jobs/submit_job_jobs_post"}, "the schema"), "). Start from: ",
      Object.keys(PRESETS).map((name) => h("button", {type: "button", class: "link", onclick: () => { spec.value = JSON.stringify(PRESETS[name], null, 2); sessionStorage.setItem(DRAFT, spec.value); }}, name))),
    form);
}
