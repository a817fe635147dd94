// The provider's pages follow what happens without a reload: the header's unread count on
// every page, and the list a page shows (the day's appointments, the notifications).
// Each polls a small JSON route of the pages. The lists are the server's own markup: a
// new item is a copy of the page's <template>, filled in; items already shown stay put,
// so focus and the screen reader's place are kept.
(function () {
  "use strict";

  const EVERY_MS = 3000;
  const LONGEST_MS = 60000;

  // What each kind of item fills in, from its JSON.
  const fillers = {
    "appointment-item": function (li, item) {
      const time = li.querySelector("time");
      time.textContent = item.time;
      time.setAttribute("datetime", item.start);
      li.querySelector(".customer").textContent = item.customer;
    },
    "notification-item": function (li, item) {
      const content = li.querySelector(".content");
      content.textContent = item.content;
      content.id = "notification-" + item.id;
      const time = li.querySelector("time");
      time.textContent = item.time;
      time.setAttribute("datetime", item.created_at);
      const form = li.querySelector("form");
      if (item.read) {
        li.classList.remove("unread");
        li.querySelector(".unread-label").remove();
        form.remove();
      } else {
        form.action = item.mark_url;
        form.querySelector("button").setAttribute("aria-describedby", content.id);
      }
    },
  };

  function follow(url, apply) {
    let delay = EVERY_MS;
    let timer = null;

    function schedule() {
      clearTimeout(timer);
      timer = document.hidden ? null : setTimeout(poll, delay);
    }

    async function poll() {
      try {
        const response = await fetch(url, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        const type = response.headers.get("Content-Type") || "";
        if (response.redirected || !type.startsWith("application/json")) {
          return; // signed out (sent to the sign-in page): nothing more to follow
        }
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        apply(await response.json());
        delay = EVERY_MS;
      } catch (error) {
        delay = Math.min(delay * 2, LONGEST_MS); // the server is busy or away: ask less
      }
      schedule();
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        poll();
      } else {
        clearTimeout(timer);
      }
    });
    schedule();
  }

  function followBadge(badge) {
    follow(badge.dataset.url, function (answer) {
      badge.textContent = answer.count > 0 ? String(answer.count) : "";
    });
  }

  function followList(list) {
    const template = document.getElementById(list.dataset.template);
    const fill = fillers[list.dataset.template];
    const empty = document.getElementById(list.dataset.empty);

    function build(item) {
      const li = template.content.firstElementChild.cloneNode(true);
      li.dataset.key = item.key;
      fill(li, item);
      return li;
    }

    follow(list.dataset.feed, function (answer) {
      const items = answer[list.dataset.items];
      const shown = new Map();
      for (const li of list.children) {
        shown.set(li.dataset.key, li);
      }
      // Put each item in its place, reusing the one already shown under its key.
      let next = list.firstElementChild;
      for (const item of items) {
        const li = shown.get(item.key) || build(item);
        shown.delete(item.key);
        if (li === next) {
          next = next.nextElementSibling;
        } else {
          list.insertBefore(li, next);
        }
      }
      for (const gone of shown.values()) {
        gone.remove();
      }
      empty.hidden = items.length > 0;
    });
  }

  const badge = document.getElementById("unread-count");
  if (badge && badge.dataset.url) {
    followBadge(badge);
  }
  for (const list of document.querySelectorAll("ul.live[data-feed]")) {
    followList(list);
  }
})();
