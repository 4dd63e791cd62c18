// The review queue's keys: 1, 2, 3 choose the first letter's candidate topic, 0 confirms its topics.
// Nothing else: every action is a plain form that works without this script.
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  var target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
  var first = document.querySelector(".queue-item");
  if (!first) return;
  var button = first.querySelector('button[data-key="' + event.key + '"]');
  if (button) {
    event.preventDefault();
    button.click();
  }
});
