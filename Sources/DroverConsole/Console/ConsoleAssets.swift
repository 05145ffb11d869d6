/// The console's stylesheet and its one hand-written script, served from `/console/assets/`
/// (the pages' Content-Security-Policy allows no inline script or style). The timeline's part
/// of the stylesheet is also inlined into the exported HTML file, so both look alike.
public enum ConsoleAssets {
    public static let timelineCSS = """
        body { font: 14px/1.45 system-ui, sans-serif; color: #1d1f21; }
        h1 { font-size: 1.3rem; } h1 code { font-size: 1.1rem; }
        dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
        dl.summary dt { color: #666; } dl.summary dd { margin: 0; }
        ol.timeline { list-style: none; padding: 0; border-top: 1px solid #ddd; }
        li.entry { padding: .35rem 0; border-bottom: 1px solid #eee; }
        .at { color: #888; font-variant-numeric: tabular-nums; display: inline-block; width: 6rem; }
        .seq { color: #888; text-decoration: none; display: inline-block; width: 3.5rem; }
        .kind { display: inline-block; width: 7rem; font-weight: 600; }
        .kind-thread .kind { color: #b35900; }
        table.lanes { table-layout: fixed; width: 100%; border-collapse: collapse; }
        table.lanes td, table.lanes th { vertical-align: top; border-left: 1px solid #eee; padding: .2rem .35rem; overflow-wrap: anywhere; font-size: .85rem; }
        table.lanes th:first-child, table.lanes td.at { width: 4.5rem; border-left: 0; color: #888; }
        table.lanes .entry .kind { display: inline; width: auto; margin-right: .3rem; } table.lanes .entry .title { display: inline; }
        table.lanes details, table.lanes pre { margin-left: 0; } table.lanes pre { max-height: 12rem; overflow-y: auto; }
        .kind-user .kind { color: #0b5cad; } .kind-agent .kind { color: #1a7f37; } .kind-tool .kind, .kind-tool-result .kind { color: #8250df; }
        .kind-model .kind, .kind-status .kind { color: #888; font-weight: normal; }
        .error .kind, .error .title { color: #cf222e; }
        .took { color: #888; }
        pre { background: #f6f8fa; padding: .5rem .75rem; margin: .35rem 0 0 16.5rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
        details { margin-left: 16.5rem; } details pre { margin-left: 0; } summary { cursor: pointer; color: #555; }
        section.raw details, section.raw details pre { margin-left: 0; }
        """

    public static let css =
        timelineCSS + """

            body { margin: 0; background: #fff; }
            header.top { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; background: #24292f; color: #eee; }
            header.top a { color: #eee; text-decoration: none; }
            header.top .brand { font-weight: 700; font-size: 1.05rem; }
            header.top nav { display: flex; gap: 1rem; }
            header.top nav a.active { border-bottom: 2px solid #fff; }
            header.top .who { margin-left: auto; color: #aaa; }
            main { max-width: 80rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
            table.list { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
            table.list th, table.list td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #eee; vertical-align: top; }
            table.list th { color: #555; font-weight: 600; border-bottom: 2px solid #ddd; }
            td.cell { max-width: 22rem; white-space: pre-wrap; word-break: break-word; }
            .status { padding: .05rem .45rem; border-radius: 1rem; background: #eee; font-size: .85rem; }
            .status-succeeded, .status-completed, .status-idle, .status-active { background: #dafbe1; color: #116329; }
            .status-failed, .status-timed_out, .status-terminated, .status-cancelled { background: #ffebe9; color: #a40e26; }
            .status-running, .status-starting, .status-rescheduling { background: #ddf4ff; color: #0a3069; }
            .status-paused, .status-pending { background: #fff8c5; color: #7d4e00; }
            .count { color: #555; margin-right: .4rem; }
            .error-text { color: #cf222e; white-space: pre-wrap; }
            .notice { background: #ddf4ff; padding: .5rem .75rem; border-radius: 4px; }
            .empty { color: #666; }
            form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: .5rem 0 1rem; }
            form.filters label { display: flex; flex-direction: column; font-size: .85rem; color: #555; }
            form.inline { display: inline; }
            .actions { display: flex; gap: .5rem; margin: .5rem 0 1rem; }
            button { font: inherit; padding: .25rem .8rem; border: 1px solid #ccc; border-radius: 4px; background: #f6f8fa; cursor: pointer; }
            button.danger { color: #a40e26; border-color: #e5b3b8; }
            button.link { border: none; background: none; color: #aaa; text-decoration: underline; padding: 0 0 0 .5rem; }
            section.deployment, section.queue { border-top: 1px solid #ddd; padding-top: .5rem; }
            #live { color: #116329; font-size: .85rem; }
            progress { vertical-align: middle; }
            """

    /// Follows a session page's timeline live (SSE), asks before actions that destroy, and
    /// nothing else: the pages work without it.
    public static let script = """
        "use strict";
        document.addEventListener("DOMContentLoaded", () => {
          for (const form of document.querySelectorAll("form[data-confirm]")) {
            form.addEventListener("submit", (event) => {
              if (!window.confirm(form.dataset.confirm)) event.preventDefault();
            });
          }
          const timeline = document.getElementById("timeline");
          if (!timeline || !timeline.dataset.tailUrl || !window.EventSource) return;
          let last = Number(timeline.dataset.lastSeq || "0");
          const live = document.getElementById("live");
          const status = document.getElementById("session-status");
          const source = new EventSource(timeline.dataset.tailUrl + "?after=" + last);
          source.addEventListener("open", () => { if (live) live.hidden = false; });
          source.addEventListener("error", () => { if (live) live.hidden = true; });
          source.addEventListener("entry", (message) => {
            const entry = JSON.parse(message.data);
            if (entry.seq <= last) return;
            last = entry.seq;
            timeline.dataset.lastSeq = String(last);
            const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
            // The server rendered and escaped this entry with the page's own template.
            timeline.insertAdjacentHTML("beforeend", entry.html);
            if (entry.status && status) {
              status.textContent = entry.status;
              status.className = "status status-" + entry.status;
            }
            if (atBottom) window.scrollTo(0, document.body.scrollHeight);
          });
        });
        """
}
