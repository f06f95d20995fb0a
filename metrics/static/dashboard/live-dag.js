// Redraws an instance's DAG as its steps move, without a reload: short polling of the instance's
// JSON view (dashboard/instances/<id>/data.json), which renders the same SVG as the page did.
// Markup: <div data-live-dag data-url="..." data-poll-ms="1000">(svg)</div>. Each answer is also
// dispatched on the element as a "dac:instance" event, for pages that show more of it. Polling
// stops once the instance is finished, and backs off (up to 30 s) while the server does not answer.
"use strict";
(function () {
  const MAX_BACKOFF_MS = 30000;

  function follow(container) {
    const url = container.dataset.url;
    const every = Number(container.dataset.pollMs) || 1000;
    let svg = container.innerHTML.trim();
    let delay = every;

    async function poll() {
      let state;
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        state = await response.json();
        delay = every;
      } catch (error) {
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        container.dispatchEvent(new CustomEvent("dac:poll-error", {detail: String(error), bubbles: true}));
        setTimeout(poll, delay);
        return;
      }
      if (state.svg.trim() !== svg) {
        svg = state.svg.trim();
        container.innerHTML = state.svg;  // the server escapes every label it draws
      }
      container.dataset.status = state.status;
      container.dispatchEvent(new CustomEvent("dac:instance", {detail: state, bubbles: true}));
      if (!state.finished) setTimeout(poll, delay);
    }

    if (container.dataset.finished !== "true") setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-dag][data-url]").forEach(follow);
  });
})();
