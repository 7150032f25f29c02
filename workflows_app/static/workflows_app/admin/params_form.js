/* The workflow admin's schema-driven params forms (see workflows_app/admin/widgets.py).
 *
 * Each params textarea marked data-nexus-params="step|trigger" gets a form drawn by json-editor from
 * the JSON Schema of the type chosen in the same inline row (a step without a type: its name). The
 * textarea stays what is posted and validated by the server; form and textarea are kept in sync both
 * ways, and "Show JSON" shows the textarea. An untouched form leaves the textarea as it was, so a save
 * that changes nothing else changes no params.
 */
(function () {
  "use strict";
  let catalogue = null;

  function schemaFor(kind, name) {
    if (catalogue === null) {
      const element = document.getElementById("nexus-param-schemas");
      catalogue = element ? JSON.parse(element.textContent) : {};
    }
    return (catalogue[kind] || {})[name] || null;
  }

  function parseObject(text) {
    try {
      const value = JSON.parse(text && text.trim() ? text : "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch (error) {
      return null;
    }
  }

  // The keys of `value` the schema knows (all of them when it allows others): what survives a type change.
  function known(schema, value) {
    if (schema.additionalProperties !== false || !schema.properties) return value;
    return Object.fromEntries(Object.entries(value).filter(([key]) => key in schema.properties));
  }

  // Free-form objects (additionalProperties not false, e.g. transform's `set`) get json-editor's
  // "add a property" button; fixed ones list their params, each included by its tick.
  function allowFreeKeys(node) {
    if (Array.isArray(node)) return node.forEach(allowFreeKeys);
    if (!node || typeof node !== "object") return undefined;
    if (node.type === "object" && node.additionalProperties !== false) {
      node.options = {...node.options, disable_properties: false};
    }
    return Object.values(node).forEach(allowFreeKeys);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function mount(textarea) {
    if (textarea.dataset.nexusMounted || textarea.name.includes("__prefix__")) return;
    textarea.dataset.nexusMounted = "1";
    const kind = textarea.dataset.nexusParams;
    const prefix = textarea.id.replace(/-params$/, "");
    const typeField = document.getElementById(prefix + "-type");
    const nameField = document.getElementById(prefix + "-name");

    const box = element("div", "nexus-params");
    const bar = element("div", "nexus-params-bar");
    const note = element("span", "nexus-params-note");
    const toggle = element("button", "nexus-params-toggle button", "Show JSON");
    toggle.type = "button";
    const holder = element("div", "nexus-params-form");
    textarea.parentNode.insertBefore(box, textarea);
    bar.append(toggle, note);
    box.append(bar, holder, textarea);

    let editor = null;
    let typeName = null;
    let baseline = null; // the editor's value for the textarea's text as last loaded
    let loadedText = textarea.value;
    let jsonWanted = false; // the user's choice; without a form the JSON is always shown

    function showJson(show) {
      textarea.classList.toggle("nexus-params-hidden", !show);
      toggle.textContent = show ? "Hide JSON" : "Show JSON";
      toggle.hidden = !editor;
    }

    function currentType() {
      const chosen = typeField ? typeField.value : "";
      return chosen || (kind === "step" && nameField ? nameField.value.trim() : "");
    }

    function build() {
      const name = currentType();
      if (name === typeName && (editor || !schemaFor(kind, name))) return;
      if (editor) editor.destroy();
      editor = null;
      typeName = name;
      const schema = schemaFor(kind, name);
      holder.dataset.type = schema ? name : "";
      if (!schema) {
        note.textContent = name ? `${name} is not a registered type: edit its JSON.` : "Choose a type to get its form.";
        showJson(true);
        return;
      }
      note.textContent = kind === "step" ? "from the step type's params schema" : "from the trigger type's schema";
      const start = known(schema, parseObject(textarea.value) || {});
      const drawn = JSON.parse(JSON.stringify(schema));
      allowFreeKeys(drawn);
      drawn.title = `${name} ${kind === "step" ? "params" : "settings"}`;
      loadedText = textarea.value;
      editor = new window.JSONEditor(holder, {
        schema: drawn, startval: start, theme: "html", show_opt_in: true, disable_edit_json: true,
        disable_properties: true, disable_collapse: true, disable_array_reorder: true,
        prompt_before_delete: false, show_errors: "interaction", form_name_root: textarea.name + "-form",
      });
      const own = editor;
      showJson(jsonWanted);
      own.on("ready", () => {
        baseline = JSON.stringify(own.getValue());
        if (JSON.stringify(start) !== JSON.stringify(parseObject(textarea.value) || {})) {
          textarea.value = JSON.stringify(start); // keys the new type does not know were dropped
          loadedText = textarea.value;
        }
      });
      own.on("change", () => {
        if (own !== editor || baseline === null) return;
        const text = JSON.stringify(own.getValue());
        textarea.value = text === baseline ? loadedText : text;
      });
    }

    textarea.addEventListener("input", () => {
      const value = parseObject(textarea.value);
      textarea.classList.toggle("nexus-params-invalid", value === null);
      if (value === null || !editor || baseline === null) return;
      loadedText = textarea.value;
      editor.setValue(value);
      baseline = JSON.stringify(editor.getValue());
    });
    toggle.addEventListener("click", () => {
      jsonWanted = textarea.classList.contains("nexus-params-hidden");
      showJson(jsonWanted);
    });
    if (typeField) typeField.addEventListener("change", build);
    if (nameField && kind === "step") nameField.addEventListener("change", build);
    build();
  }

  function mountAll(root) {
    root.querySelectorAll("textarea[data-nexus-params]").forEach(mount);
  }

  document.addEventListener("DOMContentLoaded", () => mountAll(document));
  // Django's inlines announce a row added with "Add another".
  document.addEventListener("formset:added", (event) => mountAll(event.target));
})();
