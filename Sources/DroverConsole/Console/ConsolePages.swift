/// Each console page to HTML, one function per page type so a page meets only its template.
public enum ConsolePages {
    public static func html(_ page: BatchListPage) -> String { ConsoleTemplates.render(page, "batches") }
    public static func html(_ page: BatchPage) -> String { ConsoleTemplates.render(page, "batch") }
    public static func html(_ page: SessionListPage) -> String { ConsoleTemplates.render(page, "sessions") }
    public static func html(_ page: SessionPage) -> String { ConsoleTemplates.render(page, "session") }
    public static func html(_ page: DeploymentListPage) -> String { ConsoleTemplates.render(page, "deployments") }
    public static func html(_ page: DeploymentPage) -> String { ConsoleTemplates.render(page, "deployment") }
    public static func html(_ page: QueueListPage) -> String { ConsoleTemplates.render(page, "queues") }
    public static func html(_ page: WebhookListPage) -> String { ConsoleTemplates.render(page, "webhooks") }
    public static func html(_ page: LoginPage) -> String { ConsoleTemplates.render(page, "login") }
    public static func html(_ page: MessagePage) -> String { ConsoleTemplates.render(page, "message") }

    /// One timeline entry, as the live tail adds it to an open session page.
    public static func html(_ entry: TimelineEntryView) -> String { ConsoleTemplates.render(entry, "entry") }
}
