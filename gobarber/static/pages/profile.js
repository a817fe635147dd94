// The profile's picture: a preview of the chosen file before it is uploaded, from a blob:
// URL (the pages' policy allows those images). Uploading works without it. A form sent
// back refused puts the focus on its first wrong field, below the fold otherwise.
(function () {
  "use strict";

  const refused = document.querySelector("main [aria-invalid='true']");
  if (refused) {
    refused.focus();
  }

  const input = document.getElementById("avatar");
  const preview = document.getElementById("avatar-preview");
  const caption = document.getElementById("avatar-caption");
  if (!input || !preview || !caption) {
    return;
  }
  const saved = {
    src: preview.getAttribute("src"),
    alt: preview.alt,
    hidden: preview.hidden,
    caption: caption.textContent,
  };
  let chosen = null;

  input.addEventListener("change", function () {
    if (chosen) {
      URL.revokeObjectURL(chosen);
      chosen = null;
    }
    const file = input.files && input.files[0];
    if (!file || !file.type.startsWith("image/")) {
      if (saved.src) {
        preview.src = saved.src;
      } else {
        preview.removeAttribute("src");
      }
      preview.alt = saved.alt;
      preview.hidden = saved.hidden;
      caption.textContent = saved.caption;
      return;
    }
    chosen = URL.createObjectURL(file);
    preview.src = chosen;
    preview.alt = preview.dataset.previewAlt;
    preview.hidden = false;
    caption.textContent = caption.dataset.preview;
  });
})();
