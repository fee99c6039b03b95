// Which panes are on the page. The lesson's comparison is the first two (HTTP button vs
// WebSocket); long polling and SSE, the earlier attempts at push, join when ticked and start
// with their own Start / Connect button. A hidden pane stops its traffic (where it has any of
// its own) and leaves the scoreboard; a pane that is live by itself (the WebSocket, through
// `view.activate`) goes live again when shown.

/** Mounts the chooser on `form`; no-op when absent (the blind test has no chooser). */
export function mountChooser(form, views) {
  if (!form) return;
  for (const view of views) {
    const box = form.querySelector(`input[value="${view.kind}"]`);
    if (!box) continue;
    const apply = () => {
      view.root.hidden = !box.checked;
      if (box.checked && view.activate) view.activate();
      if (!box.checked && view.deactivate) view.deactivate();
    };
    box.addEventListener('change', apply);
    if (!box.checked) apply();
  }
}
