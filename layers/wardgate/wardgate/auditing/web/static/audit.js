// The replay page's only script (no inline script: the CSP allows scripts from the page's origin).
// Each terminal of a record is a <div class="player" data-asciicast="..."> holding its recording as
// asciicast v2 text; asciinema-player (static/asciinema-player.min.js) plays it in place.
"use strict";

(function () {
  if (typeof AsciinemaPlayer === "undefined") {
    return;
  }
  document.querySelectorAll("div.player[data-asciicast]").forEach(function (element) {
    var player = AsciinemaPlayer.create({ data: element.getAttribute("data-asciicast") }, element, {
      fit: "width",
      idleTimeLimit: 2,
      terminalFontSize: "small",
      controls: true,
      preload: true,
    });
    element.setAttribute("data-ready", "true");
    player.addEventListener("ended", function () {
      element.setAttribute("data-ended", "true");
    });
  });
})();
