// The blind test (`/?blind`): the lesson's question, "which pane uses a WebSocket?", asked so
// that the page cannot answer it. Two panes, HTTP polling once a second and the WebSocket,
// are lettered "A" and "B" in a random order, and until **Reveal** nothing in the document
// says which is which: no id, class, data attribute, heading, log line, status line, star or
// verdict. Hiding names with CSS is not enough: DevTools' Elements panel shows hidden
// elements, and a learner who opens it would read the answer there.
//
// So the server leaves out of the page what has no part in the test (the long polling and
// SSE panes, the pane chooser), and this module takes out the rest: it gives the two panes
// neutral ids, and takes every element the template marks `.named` out of the document,
// keeping it here, in memory, with which pane is which. The panes hold back what only one
// transport has (a status line, a socket's state: see `PaneView.status` and `PaneView.mark`)
// and the scoreboard holds back its judgement (stars, verdict). Reveal puts it all in.
//
// The server renders `data-blind="hidden"` on <body> for `/?blind`; Reveal sets "revealed".

/** True when the page was opened as `/?blind`. */
export function blindRequested() {
  return document.body.dataset.blind !== undefined;
}

/** True while the blind test runs and the names are not revealed yet. */
export function isBlind() {
  return document.body.dataset.blind === 'hidden';
}

/**
 * Letters the mounted panes (the HTTP and the WebSocket pane, the only ones at `/?blind`) A
 * and B in a random order, and takes their kind and name off their elements: ids `pane-a`
 * and `pane-b`, no `data-kind`, no `data-name`. Returns the views in letter order, so the
 * scoreboard's rows and the strip follow the letters. Each view keeps its kind and name.
 */
export function drawLetters(views) {
  const lettered = [...views];
  if (crypto.getRandomValues(new Uint8Array(1))[0] & 1) lettered.reverse();
  lettered.forEach(({ root }, i) => {
    const letter = 'AB'[i];
    root.id = `pane-${letter.toLowerCase()}`;
    root.dataset.letter = letter;
    delete root.dataset.kind;
    delete root.dataset.name;
    const title = root.querySelector('h2');
    title.id = `${root.id}-title`;
    root.setAttribute('aria-labelledby', title.id);
    root.querySelector('.letter').textContent = letter;
    root.parentElement.append(root); // in letter order
  });
  return lettered;
}

/**
 * Starts the blind test once everything is mounted: polling switched on, every `.named`
 * element taken out of the document, and Reveal wired to put them back, name the panes
 * beside their letters and call `onReveal` (the scoreboard judges).
 */
export function startBlindTest(views, onReveal) {
  const poll = views.find((view) => view.kind === 'http').root.querySelector('.auto-poll');
  poll.checked = true;
  poll.dispatchEvent(new Event('change'));
  const putBack = takeOut(document.querySelectorAll('.named'));
  const button = document.querySelector('.reveal');
  button.addEventListener('click', () => {
    document.body.dataset.blind = 'revealed';
    button.disabled = true;
    putBack();
    for (const view of views) {
      view.root.querySelector('.letter').textContent = `${view.root.dataset.letter}: `;
      view.reveal();
    }
    onReveal();
  });
}

/**
 * Takes `elements` out of the document and returns the function that puts each back where it
 * was. The modules that mounted them keep their references, so a taken-out element goes on
 * working (a button keeps its listener, the handshake panel is filled in) out of sight.
 */
function takeOut(elements) {
  const places = [...elements].map((node) => ({ node, parent: node.parentNode, next: node.nextSibling }));
  for (const { node } of places) node.remove();
  // Last first: an element's next sibling may itself have been taken out, and is back by then.
  return () => {
    for (const { node, parent, next } of places.reverse()) parent.insertBefore(node, next);
  };
}
