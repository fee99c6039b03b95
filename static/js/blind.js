// The blind test (`/?blind`): the lesson's question, "which pane uses a WebSocket?", asked so
// that the page cannot answer it. Two panes, HTTP polling once a second and the WebSocket,
// are named only "A" and "B" in a random order; every element that names a transport (the
// template marks them `.named`) stays hidden, the log shows only direction, time and size,
// and the controls left are the symbol pickers. A learner answers from what the panes do;
// **Reveal** puts the names back, beside the letters, and shows the verdict.
//
// The server renders `data-blind="hidden"` on <body> for `/?blind`, so no name shows even
// for the moment before this script runs; Reveal sets it to "revealed".

/** True when the page was opened as `/?blind`. */
export function blindRequested() {
  return document.body.dataset.blind !== undefined;
}

/** True while the blind test runs and the names are not revealed yet. */
export function isBlind() {
  return document.body.dataset.blind === 'hidden';
}

/** The two panes the blind test compares, before their letters are drawn. */
const BLIND_KINDS = ['http', 'ws'];

/**
 * Puts the two blind panes in a random order and letters them A and B; every other pane is
 * left out. Run before the panes are mounted, so the scoreboard's rows follow the letters.
 */
export function drawLetters(panes) {
  const chosen = BLIND_KINDS.map((kind) => panes.querySelector(`.pane[data-kind="${kind}"]`));
  if (crypto.getRandomValues(new Uint8Array(1))[0] & 1) chosen.reverse();
  chosen.forEach((pane, i) => {
    panes.append(pane); // in letter order, after the panes left out (they stay hidden)
    pane.dataset.letter = 'AB'[i];
    pane.querySelector('.letter').textContent = 'AB'[i];
  });
}

/** Starts the blind test once the panes are mounted: polling switched on, Reveal wired. */
export function startBlindTest(views, onReveal) {
  const poll = document.querySelector('.pane[data-kind="http"] .auto-poll');
  poll.checked = true;
  poll.dispatchEvent(new Event('change'));
  const button = document.querySelector('.reveal');
  button.addEventListener('click', () => {
    document.body.dataset.blind = 'revealed';
    button.disabled = true;
    for (const view of views) {
      const { letter } = view.root.dataset;
      if (letter) view.root.querySelector('.letter').textContent = `${letter}: `;
      view.el('s-count-label').textContent = view.countLabel;
      view.log.reveal();
    }
    onReveal();
  });
}
