// Live updates for the staff console: a server-sent event stream tells the page that something
// changed; the page then re-fetches its live regions ([data-live]) without reloading.
(function () {
  "use strict";
  const regions = Array.from(document.querySelectorAll("[data-live]"));
  if (!regions.length || !window.EventSource) return;
  const baseTitle = document.title;

  function showCount() {
    const queue = document.querySelector("[data-waiting]");
    if (!queue) return;
    const waiting = Number(queue.dataset.waiting || 0);
    document.title = waiting ? "(" + waiting + ") " + baseTitle : baseTitle;
  }

  async function refresh(region) {
    let response;
    try {
      response = await fetch(region.dataset.live, { credentials: "same-origin", headers: { Accept: "text/html-fragment" } });
    } catch (error) {
      return; // offline for a moment: the next event or tick catches up
    }
    if (response.status === 401) {
      window.location.href = "/staff/signin";
      return;
    }
    if (response.status === 404) {
      region.innerHTML = "<p class=\"empty\">" + (await response.text()).replace(/[<>&]/g, "") + "</p>";
      return;
    }
    if (response.ok) {
      region.innerHTML = await response.text();
      showCount();
    }
  }

  const source = new EventSource("/staff/events");
  source.addEventListener("change", function (message) {
    const event = JSON.parse(message.data);
    regions.forEach(function (region) {
      if (!region.dataset.key || region.dataset.key === event.key) refresh(region);
    });
  });
  source.addEventListener("tick", function () {
    regions.forEach(refresh);
  });
  showCount();
})();
