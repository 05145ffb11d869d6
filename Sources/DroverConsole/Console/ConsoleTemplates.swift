import Mustache

/// The console's pages and the shared export's, as Mustache templates. `{{x}}` escapes for
/// HTML; no template uses the unescaped form, so nothing a session wrote becomes markup.
/// Pages extend `layout`; both HTML views of a timeline draw entries with `entry`.
enum ConsoleTemplates {
    // Parsed once; a template that does not parse is a bug the tests catch at once.
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in sources {
            do {
                try library.register(text, named: name)
            } catch {
                fatalError("console template \(name) does not parse: \(error)")
            }
        }
        return library
    }()

    static func render(_ page: Any, _ name: String) -> String {
        guard let html = library.render(page, withTemplate: name) else { fatalError("no console template \(name)") }
        return html
    }

    static let sources: [(String, String)] = [
        ("entry", entry), ("summary", summary), ("layout", layout), ("batches", batches), ("batch", batch), ("sessions", sessions),
        ("session", session),
        ("deployments", deployments), ("deployment", deployment), ("queues", queues), ("webhooks", webhooks), ("login", login), ("message", message),
        ("export", TimelinePage.html),
    ]

    static let entry = """
        <li class="entry kind-{{kindClass}}{{#isError}} error{{/isError}}" id="seq-{{seq}}" data-seq="{{seq}}" data-type="{{type}}">
        <span class="at">{{offset}}</span><a class="seq" href="#seq-{{seq}}">#{{seq}}</a><span class="kind">{{kind}}</span><span class="title">{{title}}{{#took}} <span class="took">({{took}})</span>{{/took}}</span>
        {{#body}}{{#folded}}<details><summary>{{lineCount}} lines: <code>{{preview}}</code> …</summary><pre>{{text}}</pre></details>{{/folded}}{{^folded}}<pre>{{text}}</pre>{{/folded}}{{/body}}
        </li>

        """

    /// A timeline's totals, inside `<dl class="summary">`.
    static let summary = """
        <dt>Started</dt><dd>{{started}}</dd>
        <dt>Duration</dt><dd>{{duration}}</dd>
        <dt>Events</dt><dd>{{eventCount}}</dd>
        <dt>Model requests</dt><dd>{{modelRequests}}</dd>
        <dt>Tokens</dt><dd>in {{inputTokens}} / out {{outputTokens}}</dd>
        <dt>Tool calls</dt><dd>{{toolCalls}}</dd>

        """

    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{frame.title}} · Drover</title>
        <meta name="csrf" content="{{frame.csrf}}">
        <link rel="stylesheet" href="/console/assets/console.css">
        <script src="/console/assets/console.js" defer></script>
        </head>
        <body>
        <header class="top">
        <a class="brand" href="/console">Drover</a>
        <nav>{{#frame.nav}}<a href="{{href}}"{{#active}} class="active" aria-current="page"{{/active}}>{{label}}</a>{{/frame.nav}}</nav>
        <span class="who">{{frame.workspace}}{{#frame.signedIn}}
        <form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit" class="link">Sign out</button></form>{{/frame.signedIn}}</span>
        </header>
        <main>
        {{#frame.notice}}<p class="notice" role="status">{{.}}</p>{{/frame.notice}}
        {{$content}}{{/content}}
        </main>
        </body>
        </html>

        """

    static let batches = """
        {{<layout}}{{$content}}
        <h1>Batches</h1>
        {{^batches}}<p class="empty">No batches yet. Run a job (<code>drover run Jobs/…</code>) or a job deployment.</p>{{/batches}}
        {{^empty(batches)}}
        <table class="list batches">
        <thead><tr><th>Batch</th><th>Job</th><th>Status</th><th>Progress</th><th>Counts</th><th>Created</th></tr></thead>
        <tbody>
        {{/empty(batches)}}
        {{#batches}}
        <tr data-batch="{{id}}">
        <td><a href="/console/batches/{{id}}">{{id}}</a></td><td>{{name}}</td><td><span class="status status-{{status}}">{{status}}</span></td>
        <td><progress max="100" value="{{percent}}"></progress> {{finished}}/{{items}}</td>
        <td>{{#counts}}<span class="count">{{label}} {{value}}</span> {{/counts}}</td><td>{{created}}</td>
        </tr>
        {{/batches}}
        {{^empty(batches)}}</tbody></table>{{/empty(batches)}}
        {{#next}}<p class="pages"><a href="{{.}}" rel="next">Older batches</a></p>{{/next}}
        {{/content}}{{/layout}}
        """

    static let batch = """
        {{<layout}}{{$content}}
        {{#batch}}
        <h1>Batch <code>{{id}}</code></h1>
        <dl class="summary">
        <dt>Job</dt><dd>{{name}}</dd>
        <dt>Status</dt><dd><span class="status status-{{status}}" id="batch-status">{{status}}</span></dd>
        <dt>Progress</dt><dd><progress max="100" value="{{percent}}"></progress> {{finished}} of {{items}} finished</dd>
        <dt>Counts</dt><dd>{{#counts}}<span class="count">{{label}} {{value}}</span> {{/counts}}</dd>
        {{#model}}<dt>Model</dt><dd>{{.}}</dd>{{/model}}
        {{#deployment}}<dt>Deployment</dt><dd><a href="/console/deployments/{{.}}">{{.}}</a></dd>{{/deployment}}
        <dt>Created</dt><dd>{{created}}</dd>
        </dl>
        <p><a href="/console/sessions?batch={{id}}">This batch's sessions</a></p>
        {{/batch}}
        <table class="list items">
        <thead><tr><th>Item</th><th>Status</th><th>Session</th><th>Attempts</th><th>Time</th><th>Tokens</th>{{#columns}}<th>{{.}}</th>{{/columns}}</tr></thead>
        <tbody>
        {{#items}}
        <tr id="item-{{id}}" data-item="{{id}}">
        <td>{{id}}</td><td><span class="status status-{{status}}">{{status}}</span>{{#error}}<div class="error-text">{{.}}</div>{{/error}}</td>
        <td>{{#session}}<a href="/console/sessions/{{.}}">{{.}}</a>{{/session}}{{^session}}-{{/session}}</td>
        <td>{{attempts}}</td><td>{{duration}}</td><td>{{tokens}}</td>{{#cells}}<td class="cell">{{.}}</td>{{/cells}}
        </tr>
        {{/items}}
        </tbody></table>
        {{/content}}{{/layout}}
        """

    static let sessions = """
        {{<layout}}{{$content}}
        <h1>Sessions</h1>
        <form method="get" action="/console/sessions" class="filters">
        <label>Status <select name="status">{{#statusOptions}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statusOptions}}</select></label>
        {{#filters}}
        <label>Agent <input name="agent" value="{{agent}}" placeholder="agent_…" size="16"></label>
        <label>Batch <input name="batch" value="{{batch}}" placeholder="batch id" size="16"></label>
        <label>Deployment <input name="deployment" value="{{deployment}}" placeholder="depl_…" size="16"></label>
        <label>From <input name="after" type="datetime-local" value="{{after}}"></label>
        <label>To <input name="before" type="datetime-local" value="{{before}}"></label>
        {{/filters}}
        <button type="submit">Filter</button> <a href="/console/sessions">Clear</a>
        </form>
        {{^sessions}}<p class="empty">No sessions match.</p>{{/sessions}}
        {{^empty(sessions)}}
        <table class="list sessions">
        <thead><tr><th>Session</th><th>Title</th><th>Status</th><th>Agent</th><th>Tokens</th><th>Active</th><th>Created</th></tr></thead>
        <tbody>
        {{/empty(sessions)}}
        {{#sessions}}
        <tr data-session="{{id}}"><td><a href="/console/sessions/{{id}}">{{id}}</a></td><td>{{title}}</td><td><span class="status status-{{status}}">{{status}}</span></td>
        <td>{{agent}}</td><td>{{tokens}}</td><td>{{activeSeconds}}</td><td>{{created}}</td></tr>
        {{/sessions}}
        {{^empty(sessions)}}</tbody></table>{{/empty(sessions)}}
        {{#next}}<p class="pages"><a href="{{.}}" rel="next">Next page</a></p>{{/next}}
        {{/content}}{{/layout}}
        """

    static let session = """
        {{<layout}}{{$content}}
        {{#session}}
        <h1>Session <code>{{id}}</code></h1>
        <dl class="summary">
        {{#title}}<dt>Title</dt><dd>{{.}}</dd>{{/title}}
        <dt>Status</dt><dd><span class="status status-{{status}}" id="session-status">{{status}}</span> <span id="live" hidden>following live</span></dd>
        <dt>Agent</dt><dd>{{agent}}</dd>
        {{/session}}
        {{#summary}}{{> summary}}{{/summary}}
        </dl>
        <p>{{#session}}<a href="/console/sessions/{{id}}/export.html">Download as one HTML file</a> · <a href="/console/sessions/{{id}}/export.jsonl">JSONL</a>{{/session}}</p>
        {{#omitted}}<p class="notice">The {{.}} oldest events are left out here; the download has them all.</p>{{/omitted}}
        <ol class="timeline" id="timeline" data-last-seq="{{lastSeq}}"{{#tailURL}} data-tail-url="{{.}}"{{/tailURL}}>
        {{#entries}}{{> entry}}{{/entries}}
        </ol>
        {{#threadLanes}}
        <h2>Threads</h2>
        {{#omitted}}<p class="notice">The {{.}} oldest events of the threads are left out here.</p>{{/omitted}}
        <table class="lanes" id="lanes"><thead><tr><th>at</th>{{#lanes}}<th class="lane" data-thread="{{id}}">{{name}}<br><code>{{id}}</code> <span class="status status-{{status}}">{{status}}</span></th>{{/lanes}}</tr></thead>
        <tbody>
        {{#rows}}<tr><td class="at">{{at}}</td>{{#cells}}<td>{{#entry}}<div class="entry kind-{{kindClass}}{{#isError}} error{{/isError}}" data-type="{{type}}"><span class="kind">{{kind}}</span> <span class="title">{{title}}</span>{{#body}}<details><summary><code>{{preview}}</code></summary><pre>{{text}}</pre></details>{{/body}}</div>{{/entry}}</td>{{/cells}}</tr>
        {{/rows}}
        </tbody></table>
        {{/threadLanes}}
        {{/content}}{{/layout}}
        """

    static let deploymentFields = """
        <dt>Status</dt><dd><span class="status status-{{status}}" id="deployment-status">{{status}}</span>{{#pausedReason}} ({{.}}){{/pausedReason}}</dd>
        <dt>Schedule</dt><dd>{{schedule}}</dd>
        <dt>Next runs</dt><dd>{{#nextRuns}}<span class="when">{{.}}</span> {{/nextRuns}}{{^nextRuns}}-{{/nextRuns}}</dd>
        <dt>Last run</dt><dd>{{lastRun}}</dd>
        """

    static let deploymentActions = """
        <div class="actions">
        {{#paused}}<form method="post" action="/console/deployments/{{id}}/unpause" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit" name="action" value="unpause">Unpause</button></form>{{/paused}}
        {{^paused}}<form method="post" action="/console/deployments/{{id}}/pause" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit" name="action" value="pause">Pause</button></form>{{/paused}}
        <form method="post" action="/console/deployments/{{id}}/run" class="inline" data-confirm="Start a run of {{name}} now?"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit" name="action" value="run">Run now</button></form>
        </div>
        """

    static let runsTable = """
        {{^empty(runs)}}
        <table class="list runs">
        <thead><tr><th>Run</th><th>Trigger</th><th>Created</th><th>Started</th><th>Error</th></tr></thead>
        <tbody>
        {{#runs}}
        <tr><td>{{id}}</td><td>{{trigger}}</td><td>{{created}}</td>
        <td>{{#session}}<a href="/console/sessions/{{.}}">{{.}}</a>{{/session}}{{#batch}}<a href="/console/batches/{{.}}">{{.}}</a>{{/batch}}</td>
        <td>{{#error}}<span class="error-text">{{.}}</span>{{/error}}</td></tr>
        {{/runs}}
        </tbody></table>
        {{/empty(runs)}}
        {{^runs}}<p class="empty">No runs yet.</p>{{/runs}}
        """

    static let deployments = """
        {{<layout}}{{$content}}
        <h1>Deployments</h1>
        {{^deployments}}<p class="empty">No deployments. Add a schedule file under <code>Schedules/</code> and run <code>drover apply Schedules/</code>, or create one through the API.</p>{{/deployments}}
        {{#deployments}}
        <section class="deployment" data-deployment="{{id}}">
        <h2><a href="/console/deployments/{{id}}">{{name}}</a> <code>{{id}}</code></h2>
        <dl class="summary">
        \(deploymentFields)
        </dl>
        \(deploymentActions)
        </section>
        {{/deployments}}
        {{/content}}{{/layout}}
        """

    static let deployment = """
        {{<layout}}{{$content}}
        {{#deployment}}
        <h1>Deployment {{name}} <code>{{id}}</code></h1>
        <dl class="summary">
        \(deploymentFields)
        </dl>
        \(deploymentActions)
        <h2>Runs</h2>
        \(runsTable)
        <p><a href="/console/sessions?deployment={{id}}">Sessions it started</a></p>
        {{/deployment}}
        {{/content}}{{/layout}}
        """

    static let queues = """
        {{<layout}}{{$content}}
        <h1>Queues</h1>
        {{^canAct}}<p class="notice">Queues are shared by every workspace: their actions need a key of the host's <code>default</code> workspace, or local mode.</p>{{/canAct}}
        {{^queues}}<p class="empty">No queues yet.</p>{{/queues}}
        {{#queues}}
        <section class="queue" data-queue="{{name}}">
        <h2>{{name}}{{#paused}} <span class="status status-paused">paused</span>{{/paused}}</h2>
        <table class="list counts"><thead><tr><th>Ready</th><th>Delayed</th><th>Leased</th><th>Dead</th><th>Oldest ready</th></tr></thead>
        <tbody><tr><td class="ready">{{ready}}</td><td class="delayed">{{delayed}}</td><td class="leased">{{leased}}</td><td class="dead">{{dead}}</td><td>{{oldest}}</td></tr></tbody></table>
        {{#canAct}}
        <div class="actions">
        {{#paused}}<form method="post" action="/console/queues/{{name}}/resume" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit">Resume</button></form>{{/paused}}
        {{^paused}}<form method="post" action="/console/queues/{{name}}/pause" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit">Pause</button></form>{{/paused}}
        <form method="post" action="/console/queues/{{name}}/requeue" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit">Requeue dead tasks</button></form>
        <form method="post" action="/console/queues/{{name}}/purge" class="inline" data-confirm="Delete every ready, delayed and dead task of {{name}}?"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit" class="danger">Purge</button></form>
        </div>
        {{^empty(deadTasks)}}<h3>Dead tasks</h3><table class="list dead"><thead><tr><th>Task</th><th>Died</th><th>Attempts</th><th>Last error</th></tr></thead><tbody>{{/empty(deadTasks)}}
        {{#deadTasks}}<tr><td>{{id}}</td><td>{{died}}</td><td>{{attempts}}</td><td class="error-text">{{error}}</td></tr>{{/deadTasks}}
        {{^empty(deadTasks)}}</tbody></table>{{/empty(deadTasks)}}
        {{/canAct}}
        </section>
        {{/queues}}
        {{/content}}{{/layout}}
        """

    static let webhooks = """
        {{<layout}}{{$content}}
        <h1>Webhooks</h1>
        <p>Endpoints are added on the host: <code>drover webhooks add URL --events TYPES --workspace NAME</code>, which prints the signing secret once. Deliveries are signed as Standard Webhooks (the SDK's <code>client.beta.webhooks.unwrap</code> verifies them) and retried for about a day.</p>
        <h2>Endpoints</h2>
        {{^endpoints}}<p class="empty">No endpoints in this workspace.</p>{{/endpoints}}
        {{^empty(endpoints)}}
        <table class="list endpoints"><thead><tr><th>Endpoint</th><th>URL</th><th>Events</th><th>Added</th></tr></thead><tbody>
        {{#endpoints}}<tr data-endpoint="{{id}}"><td>{{id}}</td><td>{{url}}</td><td>{{events}}</td><td>{{created}}</td></tr>{{/endpoints}}
        </tbody></table>
        {{/empty(endpoints)}}
        <h2>Dead letters</h2>
        <p>Deliveries that ran out of attempts. Sending one again keeps its <code>webhook-id</code>, so a receiver that took it already can tell.</p>
        {{^deadDeliveries}}<p class="empty">None.</p>{{/deadDeliveries}}
        {{^empty(deadDeliveries)}}
        <table class="list dead-deliveries"><thead><tr><th>Delivery</th><th>Event</th><th>Type</th><th>Endpoint</th><th>Died</th><th>Attempts</th><th>Last error</th><th></th></tr></thead><tbody>
        {{#deadDeliveries}}<tr data-task="{{taskID}}"><td>{{taskID}}</td><td>{{eventID}}</td><td>{{type}}</td><td>{{endpointID}}</td><td>{{died}}</td><td>{{attempts}}</td><td class="error-text">{{error}}</td>
        <td><form method="post" action="/console/webhooks/dead/{{taskID}}/retry" class="inline"><input type="hidden" name="csrf" value="{{frame.csrf}}"><button type="submit">Send again</button></form></td></tr>{{/deadDeliveries}}
        </tbody></table>
        {{/empty(deadDeliveries)}}
        {{/content}}{{/layout}}
        """

    static let login = """
        {{<layout}}{{$content}}
        <h1>Sign in</h1>
        <p>This server has API keys: enter one (<code>drover keys create --workspace NAME</code> makes one). It is kept in a cookie that scripts cannot read, and it shows only that key's workspace.</p>
        {{#error}}<p class="error-text" role="alert">{{.}}</p>{{/error}}
        <form method="post" action="/console/login" class="login">
        <input type="hidden" name="csrf" value="{{frame.csrf}}">
        <input type="hidden" name="next" value="{{next}}">
        <label>API key <input name="key" type="password" autocomplete="off" required size="50"></label>
        <button type="submit">Sign in</button>
        </form>
        {{/content}}{{/layout}}
        """

    static let message = """
        {{<layout}}{{$content}}
        <h1>{{heading}}</h1>
        <p class="message">{{message}}</p>
        <p><a href="/console">Back to the console</a></p>
        {{/content}}{{/layout}}
        """
}
